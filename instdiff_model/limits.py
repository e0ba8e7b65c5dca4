"""The resource budget: every size limit on what a user hands the pack (layout text, points, masks, weights files)."""
# Layouts: layout_json, demo/COCO text, keyframes and detection JSON are measured before decoding; points and mask
# pixels are counted before any point list or raster is built. 30 masks at 8192 x 8192 (the largest layout) fit.
MAX_JSON_CHARS = 64 << 20  # characters of one JSON input (a 30-mask 8192^2 layout in compressed RLE: a few MB)
MAX_LAYOUT_POINTS = 1 << 20  # scribble + polygon points of one layout (all instances)
MAX_MASK_PIXELS = 30 * 8192 * 8192  # mask pixels of one input: all its instances, keyframes and frames together

# Weights files (.pth / .ckpt zips, logtd split files, .safetensors): checked before anything is allocated.
MAX_PICKLE_BYTES = 64 << 20  # decompressed data.pkl (a real checkpoint's is a few MB)
PICKLE_MEMORY_PER_BYTE = 128  # the unpickled structure may cost at most this many bytes per pickle byte ...
PICKLE_MEMORY_BASE = 16 << 20  # ... plus this
PICKLE_HASH_WORK_PER_BYTE = 16  # tuple elements hashed (dict keys, set items) per pickle byte (plus 2^20)
MAX_PICKLE_DEPTH = 100  # nesting of containers in the pickle
MAX_ZIP_ENTRIES = 1 << 17  # entries of a checkpoint zip (one per tensor storage; a real one has thousands)
MAX_ZIP_DIRECTORY_BYTES = 32 << 20  # its central directory
MAX_SAFETENSORS_HEADER = 4 << 20  # JSON header of a .safetensors file (513 tensors: ~60 kB; SDXL: ~300 kB)
