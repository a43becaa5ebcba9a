"""Chat with LLM bmodels (plain or bmcrypt-encrypted) on the vendor runtime.

For the Qwen2-family layout that tpu-mlir's ``llm_convert.py`` produces (static and
``--dynamic`` builds, fused top-1 or sampling heads). The KV cache lives in device memory;
encrypted models are decrypted only in memory, by ``bmcrypt.loader``.

    from bmcrypt.chat import ChatSession, GenerationConfig

    with ChatSession.open(["qwen.bmodel"], "tokenizer/", keyring,
                          config=GenerationConfig(max_new_tokens=64)) as chat:
        print(chat.ask("Hello").text)

Modules, each owning one thing:

- ``layout``: which nets, shapes and dtypes make an LLM (read from the runtime);
- ``engine`` / ``kvcache``: prefill and decode on device buffers, the device KV cache;
- ``heads`` / ``sampling``: picking the next token (device heads or host), generation settings;
- ``generate``: the token loop, stop conditions, timing;
- ``tokenizer`` / ``template`` / ``conversation``: text, chat template, history truncation;
- ``plan`` / ``host`` / ``memstat``: loading several models on one device,
  load order, weight sharing, device memory measurement;
- ``session``: all of it together; ``repl``: the interactive loop of ``bmcrypt chat``.
"""

from bmcrypt.chat.conversation import Conversation, FittedPrompt, Turn, fit_prompt
from bmcrypt.chat.engine import LlmEngine
from bmcrypt.chat.generate import Generation, GenerationStats, generate
from bmcrypt.chat.host import LoadedModel, ModelHost
from bmcrypt.chat.llm_nets import LlmLayout, read_layout
from bmcrypt.chat.load_plan import ModelPlan, plan_models
from bmcrypt.chat.sampling import GENERATION_MODES, GenerationConfig
from bmcrypt.chat.session import Answer, ChatSession
from bmcrypt.chat.tokenizer import ChatTokenizer, StreamDecoder
from bmcrypt.errors import (
                                 ChatError,
                                 NotAnLlm,
                                 PromptTooLong,
                                 TokenizerError,
                                 UnsupportedGeneration,
)

__all__ = [
    "GENERATION_MODES",
    "Answer",
    "ChatError",
    "ChatSession",
    "ChatTokenizer",
    "Conversation",
    "FittedPrompt",
    "Generation",
    "GenerationConfig",
    "GenerationStats",
    "LlmEngine",
    "LlmLayout",
    "LoadedModel",
    "ModelHost",
    "ModelPlan",
    "NotAnLlm",
    "PromptTooLong",
    "StreamDecoder",
    "TokenizerError",
    "Turn",
    "UnsupportedGeneration",
    "fit_prompt",
    "generate",
    "plan_models",
    "read_layout",
]
