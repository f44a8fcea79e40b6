"""Devices, dtypes and the two ways of checking attention (eager: the library's weights; sdpa:
the module's own output), on every family, with controls that must fail."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch
from conftest import FAMILIES

from attn_demos.adapters import verify
from attn_demos.adapters.compare import compare_text_model, compare_vision_model
from attn_demos.adapters.extract import forward_with_attention, tokenize, vision_side
from attn_demos.adapters.loading import load_model
from attn_demos.adapters.precision import DeviceError, resolve_device, tolerance_for
from attn_demos.adapters.verify import forward_with_verification

TEXTS = ["The cat sat on the mat.", "Attention is all you need and the dog sat in the house."]
CPU_DTYPES = ("float32", "float64", "bfloat16")
IMPLEMENTATIONS = ("eager", "sdpa")

_loaded = {}


def loaded_model(checkpoints, family: str, dtype: str = "float32", implementation: str = "eager", device="cpu"):
    """One shared load per (family, dtype, implementation, device); tests must not change it."""
    key = (family, dtype, implementation, str(device))
    if key not in _loaded:
        _loaded[key] = load_model(str(checkpoints[family]), dtype=dtype, device=device, attn_implementation=implementation)
    return _loaded[key]


def pixels_for(loaded, batch: int = 2) -> torch.Tensor:
    size = loaded.config.image_size
    return torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))  # (B, 3, H, W)


def compare(loaded, **kwargs):
    if loaded.family.vision:
        return compare_vision_model(loaded, pixels_for(loaded), **kwargs)
    return compare_text_model(loaded, TEXTS, num_beams=2, max_new_tokens=5, **kwargs)


def verified(loaded, scale_override=None, **options):
    """forward_with_verification on TEXTS (teacher-forced on the inputs for seq2seq) or images;
    options go to forward_with_verification (e.g. keep_weights=False)."""
    if loaded.family.vision:
        pixels = pixels_for(loaded).to(loaded.dtype)
        return forward_with_verification(loaded, {"pixel_values": pixels}, vision_side(loaded, 2), **options)
    inputs, source = tokenize(loaded, TEXTS)
    if not loaded.is_encoder_decoder:
        return forward_with_verification(loaded, inputs, source, scale_override=scale_override, **options)
    from attn_demos.adapters.extract import Side

    decoder_ids = inputs["input_ids"][:, :4]  # (B, 4): any decoder tokens will do
    target = Side([["x"] * 4] * 2, torch.ones(2, 4, dtype=torch.bool))
    inputs = {**inputs, "decoder_input_ids": decoder_ids}
    return forward_with_verification(loaded, inputs, source, target, scale_override=scale_override, **options)


# --- the tolerance rule and devices --------------------------------------------------------------


def test_tolerance_follows_the_dtype():
    # 4 units of epsilon at 1 (bfloat16 2^-7, float16 2^-10), never below 1e-5 (float32's 84 units).
    assert tolerance_for("float32") == 1e-5
    assert tolerance_for("float64") == 1e-5
    assert tolerance_for("bfloat16") == 4 * 2**-7
    assert tolerance_for(torch.float16) == 4 * 2**-10


def test_tolerance_grows_with_the_logits():
    """A logit of magnitude L rounds by about L·eps, and a weight moves by as much (module doc)."""
    eps = torch.finfo(torch.float32).eps
    assert tolerance_for("float32", 1000.0) == pytest.approx(1e-5 + 1000 * eps)
    assert tolerance_for("float64", 1000.0) == pytest.approx(1e-5 + 1000 * 2**-52)
    assert tolerance_for("float32", 0.0) == tolerance_for("float32")


@pytest.fixture(scope="module")
def sharp_t5(tmp_path_factory):
    """T5 with weights 5× its usual init: logits in the thousands, attention nearly one-hot."""
    from attn_demos.adapters.random_checkpoints import build_checkpoint
    from attn_demos.tasks.examples import all_example_texts

    return build_checkpoint("t5", tmp_path_factory.mktemp("sharp") / "t5", extra_texts=all_example_texts(), initializer_factor=5.0)


@pytest.mark.slow  # builds and runs a T5 three times
def test_sharp_weights_pass_by_the_logit_rule_and_controls_still_fail(sharp_t5):
    """Sharp T5, generate pass: float32 differs beyond 1e-5 (the rounding of large logits, since
    float64 agrees to 1e-12), within the rule's allowance for its logits; a wrong scale still fails."""
    from attn_demos.adapters.compare import compare_text_model
    from attn_demos.tasks.examples import all_example_texts

    texts = all_example_texts()[:4]
    single = compare_text_model(load_model(str(sharp_t5), dtype="float32"), texts)
    double = compare_text_model(load_model(str(sharp_t5), dtype="float64"), texts)
    assert double.ok and double.max_abs_err <= 1e-12, "float64 agrees: the float32 gap is rounding"
    assert single.max_abs_logit > 100 and single.max_abs_err > tolerance_for("float32"), "precondition: sharp"
    assert single.tolerance == tolerance_for("float32", single.max_abs_logit)
    assert single.ok, (single.max_abs_err, single.tolerance)
    wrong_scale = compare_text_model(load_model(str(sharp_t5)), texts, scale_override=8**-0.5)  # 1/√d_kv
    assert not wrong_scale.ok and wrong_scale.max_abs_err > 100 * wrong_scale.tolerance


def test_devices(use_settings):
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    use_settings(device="cpu")
    assert resolve_device(None) == torch.device("cpu")
    with pytest.raises(DeviceError, match="one of"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="no CUDA GPU"):
            resolve_device("cuda")


def test_sdpa_model_really_runs_the_fused_kernel(checkpoints):
    loaded = loaded_model(checkpoints, "bert", implementation="sdpa")
    inputs, _ = tokenize(loaded, TEXTS)
    with torch.no_grad():
        outputs = loaded.model(**inputs, output_attentions=True)
    assert not outputs.attentions  # sdpa returns no weights: only the output can check them
    assert loaded.model.config._attn_implementation == "sdpa"


# --- every family × dtype × implementation -------------------------------------------------------


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", CPU_DTYPES)
@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_matches_within_the_dtype_tolerance(checkpoints, family, dtype, implementation):
    loaded = loaded_model(checkpoints, family, dtype, implementation)
    report = compare(loaded)
    assert report.tolerance == tolerance_for(dtype, report.max_abs_logit)  # 0 under sdpa: not measured there
    assert report.ok, (report.max_abs_err, report.kinds())
    kinds = {"vision"} if loaded.family.vision else {"encoder"}
    if loaded.is_encoder_decoder:
        kinds = {"encoder", "decoder", "cross"} | ({"decoder (generate)", "cross (generate)"} if implementation == "eager" else set())
    assert set(report.kinds()) == kinds
    assert report.max_abs_err > 0 or dtype != "float32" or implementation == "eager"  # sdpa float32 is never bit-exact


@pytest.mark.parametrize("family", FAMILIES)
def test_sdpa_weights_equal_the_eager_library_weights(checkpoints, family):
    """A second method: the weights the sdpa path verified are the library's eager weights."""
    eager = loaded_model(checkpoints, family)
    sdpa = loaded_model(checkpoints, family, implementation="sdpa")
    checked = verified(sdpa)
    if eager.family.vision:
        library = forward_with_attention(eager, {"pixel_values": pixels_for(eager)}, vision_side(eager, 2)).maps
    else:
        inputs, source = tokenize(eager, TEXTS)
        target = None
        if eager.is_encoder_decoder:
            from attn_demos.adapters.extract import Side

            inputs = {**inputs, "decoder_input_ids": inputs["input_ids"][:, :4]}
            target = Side([["x"] * 4] * 2, torch.ones(2, 4, dtype=torch.bool))
        library = forward_with_attention(eager, inputs, source, target).maps
    assert set(checked.maps) == set(library)
    for kind, maps in library.items():
        assert checked.maps[kind].weights.shape == maps.weights.shape
        rows = maps.query_mask[:, None, None, :, None]  # (B, 1, 1, Tq, 1)
        assert float(((checked.maps[kind].weights - maps.weights).abs() * rows).max()) <= 1e-5, kind


# --- controls: a wrong weight must change the recomputed output beyond tolerance -----------------


def _wrong_terms(monkeypatch, change):
    """Every site's recomputation gets wrong terms: change(q, k) -> (q, k), each (B, H, T, d)."""
    original = verify.attention_terms

    def wrong(*args, **kwargs):
        terms = original(*args, **kwargs)
        q, k = change(terms.q.clone(), terms.k.clone())
        return replace(terms, q=q, k=k)

    monkeypatch.setattr(verify, "attention_terms", wrong)


def _swap_heads_0_1(q, k):
    order = [1, 0, *range(2, q.shape[1])]
    return q[:, order], k[:, order]  # the weights of heads 0 and 1 exchanged; v stays


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("family", FAMILIES)
def test_swapped_heads_fail_the_output_check(checkpoints, monkeypatch, family, dtype):
    loaded = loaded_model(checkpoints, family, dtype, "sdpa")
    tolerance = tolerance_for(dtype)
    assert float(max(e.max() for e in verified(loaded).errors.values())) <= tolerance  # precondition
    _wrong_terms(monkeypatch, _swap_heads_0_1)
    caught = {}
    for kind, errors in verified(loaded).errors.items():  # (B, L, H)
        worst = errors.amax(dim=0)  # (L, H)
        if dtype == "float32":
            assert (worst[:, :2] > tolerance).all(), (kind, worst)
        caught[kind] = bool((worst[:, :2] > tolerance).any())
        assert (worst[:, 2:] <= tolerance).all(), (kind, worst)  # untouched heads still pass
    # bfloat16's tolerance (3% of the output) can miss a swap of two near-identical heads in one
    # kind (measured: the tiny Marian's cross-attention, 2.1e-2 against 3.1e-2); never in all.
    assert any(caught.values()), caught


@pytest.mark.parametrize("family", FAMILIES)
def test_one_perturbed_row_fails_the_output_check(checkpoints, monkeypatch, family):
    """The last query row of head 2 attends uniformly (its query zeroed) instead of as computed
    (the last row: under a causal mask row 0 sees one key, so any query gives it the same weights)."""
    loaded = loaded_model(checkpoints, family, "float32", "sdpa")

    def flatten_one_row(q, k):
        q[:, 2, -1] = 0.0
        return q, k

    _wrong_terms(monkeypatch, flatten_one_row)
    for kind, errors in verified(loaded).errors.items():  # (B, L, H)
        worst = errors.amax(dim=0)  # (L, H)
        assert (worst[:, 2] > tolerance_for("float32")).all(), (kind, worst)
        assert (worst[:, [0, 1, 3]] <= tolerance_for("float32")).all(), kind


def test_t5_with_the_tutorial_scale_fails_the_output_check(checkpoints):
    loaded = loaded_model(checkpoints, "t5", implementation="sdpa")
    wrong = verified(loaded, scale_override=1 / math.sqrt(loaded.config.d_kv))
    assert all(float(e.max()) > 1e-3 for e in wrong.errors.values())
    assert not compare_text_model(loaded, TEXTS, max_new_tokens=5, scale_override=1 / math.sqrt(loaded.config.d_kv)).ok


def test_verification_streams_one_site_at_a_time(checkpoints):
    """keep_weights=False: each site's weights reach the callback once, in order, and none are kept."""
    loaded = loaded_model(checkpoints, "bart", implementation="sdpa")
    inputs, source = tokenize(loaded, TEXTS)
    from attn_demos.adapters.extract import Side

    target = Side([["x"] * 4] * 2, torch.ones(2, 4, dtype=torch.bool))
    seen = []
    result = forward_with_verification(
        loaded,
        {**inputs, "decoder_input_ids": inputs["input_ids"][:, :4]},
        source,
        target,
        on_weights=lambda site, weights: seen.append((site.kind, site.layer, tuple(weights.shape))),
        keep_weights=False,
    )
    assert result.maps == {}
    layers = loaded.config.encoder_layers
    length = source.mask.shape[1]
    assert seen[:layers] == [("encoder", i, (2, 4, length, length)) for i in range(layers)]
    assert sorted(seen[layers:]) == sorted(
        [("decoder", i, (2, 4, 4, 4)) for i in range(layers)] + [("cross", i, (2, 4, 4, length)) for i in range(layers)]
    )


@pytest.mark.slow  # a process of its own
def test_core_adapters_and_gpu_scripts_import_without_gradio_or_datasets():
    """The GPU machine has torch and transformers only: what gpu_check.sh imports must not need more."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys\n"
        "sys.modules['gradio'] = None\n"
        "sys.modules['datasets'] = None\n"
        f"sys.path[:0] = [{str(root)!r}, {str(root / 'scripts')!r}]\n"
        "import pkgutil, importlib, attn_demos.core, attn_demos.adapters\n"
        "for package in (attn_demos.core, attn_demos.adapters):\n"
        "    for module in pkgutil.iter_modules(package.__path__):\n"
        "        importlib.import_module(f'{package.__name__}.{module.name}')\n"
        "import attn_demos.tasks.comparison, attn_demos.tasks.hardware, gpu_checks, gpu_bench\n"
        "print('imported')\n"
    )
    blocked = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert blocked.returncode == 0 and "imported" in blocked.stdout, blocked.stderr[-2000:]
    control = subprocess.run(
        [sys.executable, "-c", code.replace("print('imported')", "import gradio")], capture_output=True, text=True, timeout=300
    )
    assert control.returncode != 0 and "ModuleNotFoundError" in control.stderr  # the block really blocks


# --- long inputs: views fed one layer at a time ---------------------------------------------------


def test_streamed_views_equal_the_views_of_all_maps(checkpoints):
    """Rollout, head fusion and one layer's maps, built layer by layer during the pass, equal the
    core's numpy rollout and fusion of the library's eager maps (a second method)."""
    import numpy as np

    from attn_demos.adapters.reduce import FuseHeads, KeepLayer, Rollout, reduce_attention
    from attn_demos.core.aggregate import fuse_heads, rollout

    eager = loaded_model(checkpoints, "bert")
    sdpa = loaded_model(checkpoints, "bert", implementation="sdpa")
    inputs, source = tokenize(eager, TEXTS[1:])  # one example, no padding
    library = forward_with_attention(eager, inputs, source).maps["encoder"].weights[0].numpy()  # (L, H, T, T)
    reducers = [Rollout("encoder"), FuseHeads("encoder", "max"), KeepLayer("encoder", 1)]
    result = reduce_attention(sdpa, inputs, source, reducers)
    assert float(result.errors["encoder"].max()) <= tolerance_for("float32")
    np.testing.assert_allclose(reducers[0].joint[0].numpy(), rollout(library), atol=1e-5)
    np.testing.assert_allclose(reducers[1].maps[0].numpy(), fuse_heads(library, "max"), atol=1e-5)
    np.testing.assert_allclose(reducers[2].weights[0].numpy(), library[1], atol=1e-5)
    wrong = Rollout("encoder", residual=False)  # control: without the residual the rollout differs
    reduce_attention(sdpa, inputs, source, [wrong])
    assert np.abs(wrong.joint[0].numpy() - rollout(library)).max() > 1e-2


@pytest.mark.parametrize("heads_at_once", ["all", "one"])
@pytest.mark.parametrize("views", ["rollout", "rollout+last layer", "max+rollout", "mean+rollout", "min"])
def test_each_site_is_built_in_the_form_its_views_want(checkpoints, monkeypatch, site_forms, views, heads_at_once):
    """A fusion is built as one running map unless some view wants the heads or two views want
    different fusions; every view equals numpy on the library's eager maps (a second method),
    with all heads attended in one step or one head per step (the running fold over chunks)."""
    import numpy as np

    from attn_demos.adapters.reduce import FuseHeads, KeepLayer, Rollout, reduce_attention
    from attn_demos.core.aggregate import fuse_heads, rollout

    eager = loaded_model(checkpoints, "bert")
    sdpa = loaded_model(checkpoints, "bert", implementation="sdpa")
    inputs, source = tokenize(eager, TEXTS[1:])  # one example, no padding
    library = forward_with_attention(eager, inputs, source).maps["encoder"].weights[0].numpy()  # (L, H, T, T)
    layers = library.shape[0]
    reducers = {
        "rollout": [Rollout("encoder")],
        "rollout+last layer": [Rollout("encoder"), KeepLayer("encoder", layers - 1)],
        "max+rollout": [FuseHeads("encoder", "max"), Rollout("encoder")],
        "mean+rollout": [FuseHeads("encoder", "mean"), Rollout("encoder")],
        "min": [FuseHeads("encoder", "min")],
    }[views]
    expected_forms = {
        "rollout": ["mean"] * layers,
        "rollout+last layer": ["mean"] * (layers - 1) + ["heads"],
        "max+rollout": ["heads"] * layers,
        "mean+rollout": ["mean"] * layers,
        "min": ["min"] * layers,
    }[views]
    if heads_at_once == "one":
        monkeypatch.setattr(verify, "CHUNK_BYTES", 1)  # fewer bytes than one head: one head per step
    reduce_attention(sdpa, inputs, source, reducers)
    assert [form for _, form in site_forms] == expected_forms
    for reducer in reducers:
        if isinstance(reducer, Rollout):
            np.testing.assert_allclose(reducer.joint[0].numpy(), rollout(library), atol=1e-5)
        elif isinstance(reducer, FuseHeads):
            np.testing.assert_allclose(reducer.maps[0].numpy(), fuse_heads(library, reducer.how), atol=1e-5)
        else:
            np.testing.assert_allclose(reducer.weights[0].numpy(), library[-1], atol=1e-5)


@pytest.mark.slow  # a process of its own
def test_memory_check_reports_stream_below_keep():
    """scripts/memory_check.py at a small size: streaming views hold far less than every layer."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "memory_check.py"
    out = subprocess.run(
        [sys.executable, str(script), "--tokens", "1024", "--layers", "3"], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-2000:]
    ways = {row["way"]: row for row in map(json.loads, out.stdout.strip().splitlines())}
    assert set(ways) == {"verify", "layer", "rollout", "stream", "keep", "click"}
    one_layer = ways["keep"]["one_layer_maps_mb"]
    assert ways["keep"]["peak_extra_mb"] > 2.5 * one_layer  # control: three layers kept do show
    assert ways["layer"]["peak_extra_mb"] < 1.5 * one_layer  # one layer's view: about one layer
    assert ways["rollout"]["peak_extra_mb"] < ways["layer"]["peak_extra_mb"]  # fused a few heads at a time
    assert ways["verify"]["peak_extra_mb"] < ways["layer"]["peak_extra_mb"] / 2  # nothing of T×T kept
    # an Explorer click keeps both stacks (library and core) and draws them: less than one more
    # stack on top; stacking with both copies alive, and the grid in float64, made it 3.7 stacks
    assert ways["click"]["tokens"] == 512 and 1.0 < ways["click"]["peak_extra_over_kept_maps"] < 2.0


def test_on_gpu_wraps_task_functions_only_where_spaces_exists(monkeypatch):
    import importlib.machinery
    import sys
    import types

    from attn_demos.tasks import hardware

    def task(x):
        return x + 1

    monkeypatch.setitem(sys.modules, "spaces", None)  # not installed: find_spec raises or finds nothing
    monkeypatch.setattr(hardware.importlib.util, "find_spec", lambda name: None)
    assert hardware.on_gpu(task) is task
    calls = []
    fake = types.ModuleType("spaces")
    fake.__spec__ = importlib.machinery.ModuleSpec("spaces", None)

    def gpu(duration):
        def wrap(function):
            def run(*args):
                calls.append(duration)
                return function(*args)

            return run

        return wrap

    fake.GPU = gpu
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(hardware.importlib.util, "find_spec", lambda name: fake.__spec__)
    wrapped = hardware.on_gpu(task)
    assert wrapped(1) == 2 and calls == [hardware.GPU_SECONDS] and wrapped.__name__ == "task"


@pytest.mark.slow  # a process of its own
def test_every_model_running_task_function_is_handed_to_spaces_gpu():
    """With a `spaces` package present (a stand-in here, in a fresh process), importing the tasks
    hands each function that runs a model to spaces.GPU, and calling it goes through the wrapper."""
    import json
    import subprocess
    import sys

    code = (
        "import importlib.machinery, json, sys, types\n"
        "fake = types.ModuleType('spaces')\n"
        "fake.__spec__ = importlib.machinery.ModuleSpec('spaces', None)\n"
        "given = []\n"
        "def gpu(duration):\n"
        "    def wrap(function):\n"
        "        given.append(function.__name__)\n"
        "        def run(*args, **kwargs):\n"
        "            raise RuntimeError('inside spaces.GPU')\n"
        "        return run\n"
        "    return wrap\n"
        "fake.GPU = gpu\n"
        "sys.modules['spaces'] = fake\n"
        "from attn_demos.tasks import explorer, images, qa, seq2seq\n"
        "print(json.dumps(sorted(given)))\n"
        "try:\n"
        "    explorer.explore('a text')\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    names, called = done.stdout.strip().splitlines()[-2:]
    assert set(json.loads(names)) >= {"explore", "answer", "translate", "summarize", "classify_image"}, names
    assert called == "inside spaces.GPU"


@pytest.mark.parametrize("implementation", ["eager", "sdpa"])
def test_q_k_v_projections_run_once_per_pass(checkpoints, monkeypatch, implementation):
    """The recomputation takes q, k, v from the projections as they ran in the pass (recorded by
    hooks) instead of running them again; the weights are the same either way."""
    from attn_demos.adapters import extract, recompute

    loaded = loaded_model(checkpoints, "bert", implementation=implementation)
    inputs, source = tokenize(loaded, TEXTS)
    query = loaded.family.sites(loaded.model)[0].module.query  # nn.Linear of layer 0
    calls = []
    handle = query.register_forward_hook(lambda *_: calls.append(1))

    def run():
        calls.clear()
        if implementation == "sdpa":
            return forward_with_verification(loaded, inputs, source).maps["encoder"].weights
        return forward_with_attention(loaded, inputs, source).recomputed["encoder"]

    try:
        recorded = run()
        assert len(calls) == 1
        for module in (extract, verify):  # control: without recording, the projection runs again
            monkeypatch.setattr(module, "recorded_projections", lambda family: ())
        rerun = run()
        assert len(calls) == 2
    finally:
        handle.remove()
    assert torch.equal(recorded, rerun)
    assert recompute.recorded_projections(loaded.family) == loaded.family.projections


@pytest.mark.parametrize("heads_at_once", ["all", "one"])
def test_the_torch_check_reports_nan_on_a_real_row_and_ignores_padded_rows(monkeypatch, heads_at_once):
    """check_site's torch path: a NaN in the module's output on a real query row makes that head's
    deviation NaN (and leaves its magnitude finite); any value on a padded row is not looked at."""
    import numpy as np

    from attn_demos.adapters.recompute import AttentionTerms
    from attn_demos.core.torch_attention import attention, merge_heads

    if heads_at_once == "one":
        monkeypatch.setattr(verify, "CHUNK_BYTES", 1)  # fewer bytes than one head: one head per step
    generator = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 4, 6, 8, generator=generator) for _ in range(3))  # (B, H, T, d)
    context = merge_heads(attention(q, k, v)[0])  # (B, T, H·d): what a correct module returns
    context[0, 1, 2 * 8 + 3] = float("nan")  # example 0, real row 1, head 2
    context[1, 5, :] = 1e6  # example 1, row 5: padding
    real = torch.ones(2, 6, dtype=torch.bool)  # (B, T)
    real[1, 5] = False

    _, check = verify.check_site(None, AttentionTerms(q=q, k=k, v=v, scale=None), context, real, None)

    assert torch.isnan(check.deviation[0, 2])
    finite = check.deviation.clone()
    finite[0, 2] = 0.0
    assert float(finite.max()) < 1e-5  # every other head recomputed within tolerance
    size = context.view(2, 6, 4, 8).abs().numpy().copy()  # (B, T, H, d)
    size[1, 5] = 0.0  # the padded row is not looked at
    np.testing.assert_array_equal(check.magnitude.numpy(), np.nanmax(size, axis=(1, 3)))
    assert float(check.magnitude.max()) < 1e6


@pytest.mark.parametrize("heads_at_once", ["all", "one"])
def test_the_torch_check_attends_mixed_dtypes_in_the_working_dtype(monkeypatch, heads_at_once):
    """q in float32 (a norm computed in float32) with k, v and the module's output in bfloat16:
    every path attends in float32 and reproduces the output to bfloat16 rounding, as the
    chunked path did before one-step sites used their terms as built."""
    from attn_demos.adapters.recompute import AttentionTerms
    from attn_demos.core.torch_attention import attention, merge_heads

    if heads_at_once == "one":
        monkeypatch.setattr(verify, "CHUNK_BYTES", 1)  # fewer bytes than one head: one head per step
    generator = torch.Generator().manual_seed(0)
    q = torch.randn(1, 4, 6, 8, generator=generator)  # (B, H, T, d) float32
    k, v = (torch.randn(1, 4, 6, 8, generator=generator).bfloat16() for _ in range(2))  # (B, H, T, d)
    expected = attention(q.double(), k.double(), v.double())  # (B, H, T, d_v), (B, H, T, T): a second method
    context = merge_heads(expected[0]).bfloat16()  # (B, T, H·d)

    weights, check = verify.check_site(None, AttentionTerms(q=q, k=k, v=v, scale=None), context, None)

    assert weights.dtype == torch.float32
    torch.testing.assert_close(weights.double(), expected[1], atol=1e-5, rtol=0)
    assert float(check.deviation.max()) <= 2**-8 * float(check.magnitude.max())  # bfloat16 rounding of the output


class Shifted(torch.nn.Module):
    """A projection plus a constant: the wrapped projection's own output is not what the module uses."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        return self.inner(states) + 0.5  # (B, T, H·d)


def test_projections_moved_between_passes_are_recorded_under_their_new_place(checkpoints):
    """A projection wrapped or replaced after a pass (an adapter around layer 0's query, then its key in
    the query's place) is recorded as what it now is, so the recomputation still matches the library's
    weights; a fresh projection (no hook yet) makes the recomputation run the projections again."""
    loaded = load_model(str(checkpoints["bert"]), dtype="float32", attn_implementation="eager")  # changed below
    inputs, source = tokenize(loaded, TEXTS)
    attention = loaded.family.sites(loaded.model)[0].module  # layer 0's self-attention

    def deviation():
        result = forward_with_attention(loaded, inputs, source)
        library = result.maps["encoder"].weights  # (B, L, H, T, T)
        return float((result.recomputed["encoder"] - library).abs().max())

    assert deviation() < 1e-5  # first pass: hooks installed
    attention.query = Shifted(attention.query)  # a wrapper around the hooked query, as an adapter (LoRA) adds
    assert deviation() < 1e-5
    attention.query = attention.query.inner
    attention.query, attention.key = attention.key, attention.query  # both hooked, each tagged as the other
    assert deviation() < 1e-5
    fresh = torch.nn.Linear(attention.query.in_features, attention.query.out_features)
    fresh.load_state_dict(attention.query.state_dict())
    attention.query = fresh
    assert deviation() < 1e-5
