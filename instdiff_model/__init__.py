"""Pure-torch InstanceDiffusion: layout, instance tokenizer, fusers, ScaleU, masked attention, MIS, checkpoint I/O."""
