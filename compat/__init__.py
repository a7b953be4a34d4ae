"""The compatibility matrix (`make compat`): real frameworks run plainly and under `throughput profile`.

Runs in its own environment (compat/.venv) holding Lightning, transformers, Accelerate and safetensors;
none of them is a dependency of throughput."""
