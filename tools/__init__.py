"""Reference and test tooling (weight formula, reference-vector check); not shipped: .comfyignore leaves it out."""
