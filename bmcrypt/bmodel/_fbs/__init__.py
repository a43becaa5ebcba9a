"""Generated FlatBuffers code for schemas/bmodel.fbs (flatc 2.0.8 + scripts/gen-schema.sh).

Do not edit: run scripts/gen-schema.sh after changing the schema.
"""

from bmcrypt._lazy import load_flatbuffers_runtime

load_flatbuffers_runtime()  # first: how the runtime is loaded is bmcrypt's choice (numpy)
