"""Bad inputs, at every layer a request passes through. Task functions raise BadInputError or
ModelLoadError with a one-line message, or work and say what they changed (a notice); panel
functions never raise: the app's wrapper (wiring.handler) turns the error into a one-line '⚠️ …' status. A few of the
same inputs then go through the running app, which keeps answering.

What a person sees for each input is collected in SEEN; set ATTN_DEMOS_MESSAGES_TABLE=path to
write it as a Markdown table when the module finishes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attn_demos.core.pooling import display_tokens
from attn_demos.errors import AttnDemosError, BadInputError, ModelLoadError
from attn_demos.tasks.basics import run_basics
from attn_demos.tasks.explorer import explore
from attn_demos.tasks.images import MAX_SIDE, classify_image
from attn_demos.tasks.qa import LOW_CONFIDENCE, QA_MAX_WINDOWS, answer
from attn_demos.tasks.registry import NAMED_MODEL_REFUSED
from attn_demos.tasks.seq2seq import summarize, translate
from attn_demos.ui import basics as basics_panel
from attn_demos.ui import explorer as explorer_panel
from attn_demos.ui import images as images_panel
from attn_demos.ui import qa as qa_panel
from attn_demos.ui import seq2seq as seq2seq_panel
from attn_demos.ui import wiring
from attn_demos.ui.wiring import CONTROL_OUTPUTS, handler

TOL = 1e-5
SEEN: dict[str, str] = {}  # "layer · case" -> what the person sees


@pytest.fixture(scope="module", autouse=True)
def messages_table():
    yield
    target = os.environ.get("ATTN_DEMOS_MESSAGES_TABLE")
    if target:
        rows = ["| {} | {} |".format(case, message.replace("|", "\\|")) for case, message in sorted(SEEN.items())]
        Path(target).write_text("\n".join(["| input | what the user sees |", "|---|---|", *rows]) + "\n")


def seen(case: str, message: str) -> str:
    SEEN[case] = " ⏎ ".join(line for line in message.splitlines() if line.strip())
    return message


@pytest.fixture
def configured(use_settings, checkpoints):
    """The tabs' models as the test app has them: MiniLM for the Explorer, tiny checkpoints elsewhere;
    visitors may not name models."""
    from app_server import model_settings

    use_settings(**model_settings(checkpoints, explore_model=None))


UNCHANGED = {"__type__": "update"}  # gr.skip(): a control a failed run leaves as it was


def panel(function, outputs: tuple[str, ...], *args) -> dict:
    """Call a panel function the way the app does (through wiring.handler): never raises."""
    values = handler(function, outputs)(*args)
    return dict(zip(outputs, values if len(outputs) > 1 else (values,)))


def assert_refused(out: dict, fragment: str) -> str:
    """A one-line '⚠️' status naming the problem, from our own errors (not the generic fallback)."""
    status = out["status"]
    assert status.startswith("⚠️ "), status
    assert fragment in status, status
    assert "\n" not in status and "Traceback" not in status and "Something went wrong" not in status, status
    assert all(value is None for name, value in out.items() if name != "status" and name not in CONTROL_OUTPUTS)
    assert all(value == UNCHANGED for name, value in out.items() if name in CONTROL_OUTPUTS)  # kept, not cleared
    return status


def assert_verified(out: dict) -> None:
    badge = out["badge"]
    assert badge.startswith("recomputed from weights: max |Δ| ") and badge.endswith("✓"), badge
    assert float(badge.split("|Δ| ")[1].split()[0]) <= TOL


def one_line(error: AttnDemosError) -> str:
    message = str(error)
    assert message and "\n" not in message
    return message


# ---------------------------------------------------------------- text --------------------------

# MiniLM: "the" is one WordPiece; [CLS] and [SEP] make 20,000. Tiny Marian: one word each plus </s>.
LONG_TEXT = "the " * 19_998

TEXT_ERRORS = {
    "empty": ("", "is empty: type something first"),
    "whitespace only": ("  \n\t  ", "is empty: type something first"),
    "only control characters": ("\x00\x07\u200b", "holds only control characters"),
}


@pytest.mark.parametrize("case", TEXT_ERRORS)
def test_explorer_refuses_empty_text(configured, case):
    text, fragment = TEXT_ERRORS[case]
    with pytest.raises(BadInputError, match=fragment):
        explore(text)
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, text, 0, "mean", False, "")
    seen(f"explorer · text {case}", assert_refused(out, fragment))


@pytest.mark.parametrize("case", TEXT_ERRORS)
def test_seq2seq_and_qa_refuse_empty_text(configured, case):
    text, fragment = TEXT_ERRORS[case]
    with pytest.raises(BadInputError, match=f"text to translate {fragment.split(':')[0]}"):
        translate(text, num_beams=1, max_new_tokens=4)
    with pytest.raises(BadInputError, match=f"article {fragment.split(':')[0]}"):
        summarize(text, num_beams=1, max_new_tokens=4)
    with pytest.raises(BadInputError, match=f"question {fragment.split(':')[0]}"):
        answer(text, "The cat slept on the mat.")
    with pytest.raises(BadInputError, match=f"context {fragment.split(':')[0]}"):
        answer("Where did the cat sleep?", text)
    calls = {
        "translation": (seq2seq_panel.translate, seq2seq_panel.RUN_OUTPUTS, text, "mean", "mean", False, 1, ""),
        "summarization": (seq2seq_panel.summarize, seq2seq_panel.RUN_OUTPUTS, text, "mean", "mean", False, 1, ""),
        "QA question": (qa_panel.answer, qa_panel.RUN_OUTPUTS, text, "The cat slept.", "mean", "mean", "answer", ""),
        "QA context": (qa_panel.answer, qa_panel.RUN_OUTPUTS, "Where did the cat sleep?", text, "mean", "mean", "answer", ""),
    }
    for tab, (function, outputs, *args) in calls.items():
        seen(f"{tab} · {case}", assert_refused(panel(function, outputs, *args), fragment.split(":")[0]))


def test_summarization_prefix_does_not_hide_an_empty_article(checkpoints, tmp_path):
    """T5 checkpoints prepend 'summarize: '; an empty article must still be refused, not summarized."""
    folder = tmp_path / "t5-with-prefix"
    shutil.copytree(checkpoints["t5"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["task_specific_params"] = {"summarization": {"prefix": "summarize: "}}
    (folder / "config.json").write_text(json.dumps(config))
    for text, fragment in TEXT_ERRORS.values():
        with pytest.raises(BadInputError, match=f"article {fragment.split(':')[0]}"):
            summarize(text, source=str(folder), num_beams=1, max_new_tokens=4)
    result = summarize("the cat sat", source=str(folder), num_beams=1, max_new_tokens=4)
    from transformers import AutoTokenizer

    tail = AutoTokenizer.from_pretrained(folder).tokenize(" the cat sat") + ["</s>"]
    assert result.source_tokens[-len(tail):] == tail  # after the prefix's tokens


def test_explorer_single_character(configured):
    result = explore("a")
    assert result.tokens == ["[CLS]", "a", "[SEP]"]
    assert result.library.shape == (6, 12, 3, 3) and result.max_abs_err <= TOL
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, "a", 0, "mean", False, "")
    assert_verified(out)
    assert out["numbers"]["query_tokens"] == ["[CLS]", "a", "[SEP]"]
    seen("explorer · a single character", "works: [CLS] a [SEP], badge ✓")


LAYER_HEAD_ERRORS = {
    # case: (layer, head, what the status says); each was rounded, or answered with int()'s words
    "head 'foo'": (0, "foo", "head must be mean, max, min, rollout or a head number, not 'foo'"),
    "head 2.9": (0, 2.9, "head must be mean, max, min, rollout or a head number, not 2.9"),
    "head true": (0, True, "head must be mean, max, min, rollout or a head number, not True"),
    "layer 1.7": (1.7, "mean", "layer must be 'mean' or a layer number, not 1.7"),
    "layer true": (True, "mean", "layer must be 'mean' or a layer number, not True"),
    "layer '1.7'": ("1.7", "mean", "layer must be 'mean' or a layer number, not '1.7'"),
    "head of markup": (0, '<img src=x onerror="alert(1)">', "or a head number, not a value of 30 characters"),
}


@pytest.mark.parametrize("case", LAYER_HEAD_ERRORS)
def test_layer_and_head_typed_wrong_are_refused_not_rounded(configured, case):
    layer, head, fragment = LAYER_HEAD_ERRORS[case]
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, "the cat", layer, head, False, "")
    status = seen(f"explorer · {case}", assert_refused(out, fragment))
    assert "<" not in status  # nothing a visitor typed reaches the page as markup


def test_explorer_20000_tokens_are_truncated_with_a_notice(configured):
    result = explore(LONG_TEXT)
    assert len(result.tokens) == 512  # MiniLM's max_position_embeddings
    assert result.tokens[0] == "[CLS]" and result.tokens[-1] == "[SEP]" and set(result.tokens[1:-1]) == {"the"}
    notice = "Input truncated to the model's limit: kept 512 of 20,000 tokens."
    assert notice in result.notices and result.max_abs_err <= TOL
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, LONG_TEXT, 0, "mean", False, "")
    assert_verified(out)
    assert f"ℹ️ {notice}" in out["status"]
    seen("explorer · ~20,000 tokens", out["status"])


def test_translation_20000_tokens_are_truncated_with_a_notice(configured):
    result = translate(LONG_TEXT, num_beams=1, max_new_tokens=4)
    assert len(result.source_tokens) == 128  # the tiny tokenizer's model_max_length
    assert "Input truncated to the model's limit: kept 128 of 19,999 tokens." in result.notices
    assert result.cross_view().verified
    seen("translation · ~20,000 tokens", "ℹ️ Input truncated to the model's limit: kept 128 of 19,999 tokens.")


def test_qa_long_context_is_read_in_overlapping_windows(configured):
    # [CLS] where is the cat ? [SEP] … [SEP]: 120 context tokens per window, 60 shared with the next;
    # 1,000 context words fill 16 windows (the last starts at word 900), 1,800 fill 29, 4,000 would need 66.
    result = answer("where is the cat ?", "the " * 1000)
    assert result.windows == 16 and len(result.tokens) <= 128
    assert result.question_index == [1, 2, 3, 4, 5]  # the question is kept whole in every window
    notice = f"Context split into 16 overlapping windows, all 16 searched; answer from window {result.window + 1}."
    assert notice in result.notices
    seen("QA · 1,000-word context", f"ℹ️ {notice}")
    longer = answer("where is the cat ?", "the " * 1800)
    assert longer.windows == longer.windows_in_context == 29  # every window, past the old limit of 16
    longest = answer("where is the cat ?", "the " * 4000)
    assert longest.windows == QA_MAX_WINDOWS == 32 and longest.windows_in_context == 66
    cut = (
        "The context is long: searched its first 32 of 66 windows (7,919 of 15,999 characters); "
        "one question searches at most 32 windows."
    )
    assert cut in longest.notices
    seen("QA · 4,000-word context", f"ℹ️ {cut}")


def test_qa_question_longer_than_the_model_limit(configured):
    question = "where is the cat " * 40  # 160 tokens: more than the tiny model's 128 in all
    with pytest.raises(BadInputError, match="the question is too long for this model"):
        answer(question, "The cat slept.")
    out = panel(qa_panel.answer, qa_panel.RUN_OUTPUTS, question, "The cat slept.", "mean", "mean", "answer", "")
    seen("QA · question longer than the model limit", assert_refused(out, "the question is too long"))


SCRIPTS = {
    # case: (text, tokens MiniLM must show, notice)
    "emoji": ("I love 🍕 and 🐈\u200d⬛ !", ["i", "love", "[UNK]", "and"], "Removed 1 invisible control or formatting"),
    "Arabic/Hebrew + English": ("مرحبا hello שלום world", ["hello", "world", "م", "ש"], None),
    "control characters": ("one\rtwo\x0bthree\x00\u202e", ["one", "two", "three"], "Removed 2 invisible control"),
    "Japanese into English MiniLM": ("猫がマットの上に座った。", ["[UNK]", "上"], None),
}


@pytest.mark.parametrize("case", SCRIPTS)
def test_explorer_other_scripts_work_and_show_unknown_tokens(configured, case):
    text, expected_tokens, notice = SCRIPTS[case]
    result = explore(text)
    assert set(expected_tokens) <= set(result.tokens), result.tokens
    assert result.max_abs_err <= TOL
    assert any(notice in n for n in result.notices) if notice else not result.notices
    if case == "control characters":  # \r and \v separate words; NUL and the bidi override are dropped
        assert result.tokens == ["[CLS]", "one", "two", "three", "[SEP]"]
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, text, 0, "mean", False, "")
    assert_verified(out)
    assert out["numbers"]["query_tokens"] == display_tokens(result.tokens)[:8]  # the page shows a preview
    assert out["numbers"]["shape"] == [len(result.tokens)] * 2
    unknown = result.tokens.count("[UNK]")
    seen(f"explorer · {case}", f"works: {' '.join(result.tokens)} ({unknown} [UNK]), badge ✓" + (
        f" ⏎ ℹ️ {next(n for n in result.notices if notice in n)}" if notice else ""))


@pytest.mark.parametrize("case", SCRIPTS)
def test_translation_of_other_scripts_works(configured, case):
    text, _, notice = SCRIPTS[case]
    result = translate(text, num_beams=1, max_new_tokens=4)
    assert result.source_tokens[-1] == "</s>"
    assert result.cross_view().verified
    assert any(notice in n for n in result.notices) if notice else True


def test_qa_answer_not_in_context_gets_a_low_confidence_notice(configured, checkpoints, tmp_path):
    """A QA head of zeros scores every span alike: P(start)·P(end) = 1/(C+1)² over the C context
    tokens and [CLS], far below the threshold."""
    import torch
    from transformers import AutoModelForQuestionAnswering

    folder = tmp_path / "uniform-qa"
    shutil.copytree(checkpoints["distilbert"], folder)
    model = AutoModelForQuestionAnswering.from_pretrained(folder)
    with torch.no_grad():
        model.qa_outputs.weight.zero_()
        model.qa_outputs.bias.zero_()
    model.save_pretrained(folder)
    result = answer("Who won the election?", "The cat slept on the warm windowsill.", source=str(folder))
    expected = 1 / (len(result.context_index) + 1) ** 2
    assert result.score == pytest.approx(expected) and result.score < LOW_CONFIDENCE
    notice = f"Low confidence ({expected:.1%}): the answer may not be in the context."
    assert notice in result.notices
    seen("QA · answer not in the context", f"ℹ️ {notice}")


def test_qa_context_shorter_than_the_question(configured):
    result = answer("Where did the cat sleep on the warm windowsill all afternoon?", "cat")
    assert [result.tokens[i] for i in result.context_index] == ["cat"]
    assert result.span == (result.context_index[0],) * 2 and result.answer == "cat"
    assert result.view().verified
    out = panel(qa_panel.answer, qa_panel.RUN_OUTPUTS, "Where did the cat sleep?", "cat", "mean", "mean", "answer", "")
    assert_verified(out)
    assert out["answer"].startswith("**cat**")
    seen("QA · context shorter than the question", f"works: answer {out['answer']} ⏎ {out['status']}")


# ---------------------------------------------------------------- images ------------------------


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width × height pixels (Pillow reads the size before any pixel)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


IMAGE_ERRORS = {
    "corrupt bytes": (lambda: io.BytesIO(b"\x89PNG\r\n\x1a\n certainly not an image"), "not a readable image"),
    "truncated PNG": (lambda: io.BytesIO(png_bytes(Image.new("RGB", (64, 64), "red"))[:60]), "not a readable image"),
    "text file as image": (lambda: io.BytesIO(b"hello, I am text"), "not a readable image"),
    "1×1 pixel": (lambda: Image.new("RGB", (1, 1)), "The image is 1×1 pixels: too small"),
    "header claims 20000×20000": (lambda: io.BytesIO(png_header_only(20_000, 20_000)), "too many pixels"),
    "no image": (lambda: None, "No image: upload one"),
}


@pytest.mark.parametrize("case", IMAGE_ERRORS)
def test_bad_images_are_refused(configured, case):
    make, fragment = IMAGE_ERRORS[case]
    with pytest.raises(BadInputError, match=fragment) as error:
        classify_image(make())
    one_line(error.value)
    out = panel(images_panel.classify_image, images_panel.RUN_OUTPUTS, make(), "mean", "mean", "")
    seen(f"image · {case}", assert_refused(out, fragment))


def test_rgba_is_flattened_onto_white(configured):
    image = Image.new("RGBA", (64, 64), (255, 0, 0, 0))  # fully transparent red
    image.paste((0, 0, 255, 255), (0, 0, 32, 64))  # left half opaque blue
    result = classify_image(image)
    assert result.image.mode == "RGB"
    assert result.image.getpixel((10, 10)) == (0, 0, 255) and result.image.getpixel((50, 10)) == (255, 255, 255)
    assert result.check_error() <= TOL
    assert image.mode == "RGBA" and image.getpixel((50, 10)) == (255, 0, 0, 0)  # the caller's image is untouched
    out = panel(images_panel.classify_image, images_panel.RUN_OUTPUTS, image, "mean", "mean", "")
    assert_verified(out)
    seen("image · RGBA (transparent)", "works: transparency flattened onto white, badge ✓")


def test_grayscale_and_file_bytes_work(configured):
    gray = classify_image(Image.new("L", (48, 64), 77))
    assert gray.image.mode == "RGB" and gray.image.getpixel((5, 5)) == (77, 77, 77)
    from_bytes = classify_image(png_bytes(Image.new("L", (48, 64), 77)))  # a file's content
    np.testing.assert_array_equal(from_bytes.library, gray.library)
    out = panel(images_panel.classify_image, images_panel.RUN_OUTPUTS, Image.new("L", (48, 64), 77), "mean", "mean", "")
    assert_verified(out)
    seen("image · grayscale (L)", "works: converted to RGB, badge ✓")


def test_panorama_is_downscaled_and_squeezed_with_notices(configured):
    result = classify_image(Image.new("RGB", (4000, 200), "white"))
    assert result.image.size == (MAX_SIDE, round(200 * MAX_SIDE / 4000))  # 1024 × 51, aspect kept
    assert "Image downscaled from 4000×200 to 1024×51." in result.notices
    assert "A very wide or tall image is squeezed to the model's square input." in result.notices
    assert result.grid == (4, 4) and result.check_error() <= TOL
    out = panel(images_panel.classify_image, images_panel.RUN_OUTPUTS, Image.new("RGB", (4000, 200)), "mean", "mean", "")
    assert_verified(out)
    seen("image · panorama 4000×200", out["status"])


BIG_IMAGE_SCRIPT = r"""
import json, sys
from pathlib import Path
from PIL import Image

def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])

vit, path = sys.argv[1], sys.argv[2]
from attn_demos.tasks.images import classify_image
classify_image(Image.new("RGB", (64, 64)), source=vit)  # model loaded, code paths warm
import gc; gc.collect()
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")  # reset the peak (VmHWM) to the current RSS
before = kib("VmRSS")
result = classify_image(path, source=vit)
print(json.dumps({"growth_mb": (kib("VmHWM") - before) / 1024, "size": result.image.size,
                  "notices": result.notices, "error": result.check_error()}))
"""


@pytest.fixture(scope="module")
def big_images(tmp_path_factory) -> dict[str, Path]:
    """8000×8000 JPEG and PNG files, made in another process so this one never holds 256 MB of pixels."""
    folder = tmp_path_factory.mktemp("big-images")
    code = (
        "import sys; from PIL import Image, ImageDraw\n"
        "image = Image.linear_gradient('L').resize((8000, 8000)).convert('RGB')\n"
        "ImageDraw.Draw(image).ellipse((1000, 1000, 7000, 7000), outline='red', width=200)\n"
        "image.save(sys.argv[1] + '/big.jpg', quality=80); image.save(sys.argv[1] + '/big.png', compress_level=1)\n"
    )
    subprocess.run([sys.executable, "-c", code, str(folder)], check=True, timeout=120)
    return {"jpeg": folder / "big.jpg", "png": folder / "big.png"}


# Peak RSS growth while classifying one 8000×8000 file (measured: JPEG +27 MB, PNG +280 MB).
# JPEG: draft() decodes at 1/4 scale (2000×2000×4 B = 16 MB); a full decode alone is 256 MB.
# PNG has no reduced decode: one full 8000×8000×4 B = 256 MB buffer is unavoidable, a second
# full-size copy is not (before the fix: +488 MB for both).
PEAK_GROWTH_MB = {"jpeg": 150, "png": 400}


@pytest.mark.parametrize("kind", ["jpeg", "png"])
def test_8000_by_8000_image_is_downscaled_in_bounded_memory(checkpoints, big_images, kind):
    if not os.access("/proc/self/clear_refs", os.W_OK):
        pytest.skip("this kernel does not let a process reset its peak RSS")
    run = subprocess.run(
        [sys.executable, "-c", BIG_IMAGE_SCRIPT, str(checkpoints["vit"]), str(big_images[kind])],
        capture_output=True, text=True, timeout=180,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "ATTN_DEMOS_MAX_IMAGE_PIXELS": str(8000 * 8000)},  # default: 25,000,000
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["size"] == [1024, 1024]
    assert "Image downscaled from 8000×8000 to 1024×1024." in report["notices"]
    assert report["error"] <= TOL
    assert report["growth_mb"] < PEAK_GROWTH_MB[kind], report
    seen(f"image · 8000×8000 {kind.upper()}",
         f"ℹ️ Image downscaled from 8000×8000 to 1024×1024. (peak RSS +{report['growth_mb']:.0f} MB)")


# ---------------------------------------------------------------- basics ------------------------

SEED_KEY, SEED_VALUE = "[[1, 0, 0], [0, 1, 0]]", "[[1, 2], [3, 4]]"
MATRIX_ERRORS = {
    "q and k widths differ": (("[[1, 2]]", SEED_KEY, SEED_VALUE), "same number of columns (d_k)"),
    "k and v rows differ": (("[[1, 0, 1]]", SEED_KEY, "[[1, 2]]"), "same number of rows"),
    "ragged rows": (("[[1, 0], [1]]", SEED_KEY, SEED_VALUE), "every row needs the same number of columns"),
    "a string entry": (('[[1, "x", 1]]', SEED_KEY, SEED_VALUE), "every entry must be a number"),
    "a boolean entry": (("[[1, true, 1]]", SEED_KEY, SEED_VALUE), "every entry must be a number"),
    "3-D nesting": (("[[[1, 0, 1]]]", SEED_KEY, SEED_VALUE), "every entry must be a number"),
    "NaN": (("[[NaN, 0, 1]]", SEED_KEY, SEED_VALUE), "NaN and infinity are not allowed"),
    "Infinity": (("[[1, 0, Infinity]]", SEED_KEY, SEED_VALUE), "NaN and infinity are not allowed"),
    "1e400 (parses to inf)": (("[[1e400, 0, 1]]", SEED_KEY, SEED_VALUE), "NaN and infinity are not allowed"),
    "1e308 (scores overflow)": (("[[1e308, 1e308, 0]]", "[[1e308, 1e308, 0]]", "[[1]]"), "numbers are too large"),
    "empty list": (("[]", SEED_KEY, SEED_VALUE), "expected a non-empty list of rows"),
    "empty row": (("[[]]", SEED_KEY, SEED_VALUE), "expected a non-empty list of rows"),
    "a JSON object": (('{"q": 1}', SEED_KEY, SEED_VALUE), "expected a non-empty list of rows"),
    "a bare number": (("5", SEED_KEY, SEED_VALUE), "expected a non-empty list of rows"),
    "not JSON": (("[[1, 0,", SEED_KEY, SEED_VALUE), "not valid JSON"),
    "empty text": (("", SEED_KEY, SEED_VALUE), "not valid JSON"),
    "None": ((None, SEED_KEY, SEED_VALUE), "expected a non-empty list of rows"),
}


@pytest.mark.parametrize("case", MATRIX_ERRORS)
def test_basics_bad_matrices(case):
    args, fragment = MATRIX_ERRORS[case]
    with np.errstate(all="ignore"):  # 1e308: numpy warns about the overflow it then reports
        with pytest.raises(BadInputError, match=re.escape(fragment)) as error:
            run_basics(*args)
        one_line(error.value)
        out = panel(basics_panel.basics, basics_panel.OUTPUTS, *args)
    seen(f"basics · {case}", assert_refused(out, fragment))


def test_basics_single_row_vector_is_accepted():
    """A flat list is one row: [1, 0, 1] means [[1, 0, 1]] (the seed query)."""
    result = run_basics("[1, 0, 1]", SEED_KEY, SEED_VALUE)
    assert result.weights.shape == (1, 2)
    # scores = [1, 0] / √3; softmax -> e^(1/√3) / (e^(1/√3) + 1)
    assert result.weights[0, 0] == pytest.approx(np.exp(1 / np.sqrt(3)) / (np.exp(1 / np.sqrt(3)) + 1))


# ---------------------------------------------------------------- model override ----------------


@pytest.fixture(scope="module")
def bad_checkpoints(checkpoints, tmp_path_factory) -> dict[str, Path]:
    """Folders a visitor might name: no weights, GPT-2, remote code, pickle only."""
    import torch
    import transformers
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("bad-checkpoints")
    no_weights = root / "no-weights"
    no_weights.mkdir()
    shutil.copy(checkpoints["bert"] / "config.json", no_weights / "config.json")

    bloom = root / "bloom"  # BLOOM: not recomputed from weights, and no call of transformers' attention function
    config = transformers.BloomConfig(hidden_size=16, n_head=2, n_layer=1, vocab_size=40)
    transformers.BloomModel(config).save_pretrained(bloom)
    assert (bloom / "model.safetensors").exists()

    remote = root / "remote-code"
    remote.mkdir()
    (remote / "config.json").write_text(json.dumps({
        "model_type": "fancy_attention",
        "architectures": ["FancyModel"],
        "auto_map": {"AutoConfig": "modeling_fancy.FancyConfig", "AutoModel": "modeling_fancy.FancyModel"},
    }))
    marker = root / "REMOTE_CODE_RAN"
    (remote / "modeling_fancy.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    save_file({"weight": torch.zeros(2)}, str(remote / "model.safetensors"))

    # transformers 5 always saves safetensors (save_pretrained has no safe_serialization any more), so
    # pickle weights are written the way old checkpoints were: torch.save of the state dict. The
    # file also carries a payload that would create a marker file if anything unpickled it.
    pickle_only = root / "pickle-only"
    shutil.copytree(checkpoints["bert"], pickle_only)
    state = transformers.AutoModel.from_pretrained(checkpoints["bert"]).state_dict()
    (pickle_only / "model.safetensors").unlink()
    torch.save({**state, "payload": _Unpickled(str(root / "PICKLE_LOADED"))}, pickle_only / "pytorch_model.bin")
    return {"no weights": no_weights, "bloom": bloom, "remote code": remote, "pickle only": pickle_only,
            "remote marker": marker, "pickle marker": root / "PICKLE_LOADED"}


class _Unpickled:
    """Unpickling this calls open(path, 'w'): proof, if the file appears, that a pickle was loaded."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


OVERRIDES = {
    # case: (source, the reason the operator's log gives; the visitor sees NAMED_MODEL_REFUSED)
    "Hub id that does not exist (offline)": ("no-such-org/no-such-model", "the Hugging Face Hub is unreachable from here"),
    "folder that does not exist": ("/no/such/folder", "no such folder"),
    "folder without weights": ("no weights", "no weights; attn-demos loads safetensors only"),
    "BLOOM (unsupported architecture)": ("bloom", "architecture 'bloom' is not supported"),
    "config with auto_map (remote code)": ("remote code", "needs its own Python code"),
    "pickle-only weights": ("pickle only", "only pickle weights (pytorch_model.bin)"),
    "not a model folder": (str(Path(__file__).parent), "not a model folder (no config.json)"),
    "a file, not a folder": (__file__, "could not load"),
}


def _source(bad_checkpoints, name: str) -> str:
    return str(bad_checkpoints[name]) if name in bad_checkpoints else name


@pytest.mark.parametrize("case", OVERRIDES)
def test_model_override_is_refused_without_the_flag(configured, bad_checkpoints, case):
    source = _source(bad_checkpoints, OVERRIDES[case][0])
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, "hello", 0, "mean", False, source)
    status = assert_refused(out, "this app serves its configured models only (start it with --allow-user-models)")
    seen("model override without the flag", status)


@pytest.mark.parametrize("case", OVERRIDES)
def test_model_override_bad_sources_fail_fast_with_one_sentence(configured, bad_checkpoints, monkeypatch, caplog, use_settings, case):
    """Every refusal of a model a visitor names says the same sentence (the answers used to tell
    which folders exist on the server); the reason goes to the operator's log."""
    source_name, reason = OVERRIDES[case]
    source = _source(bad_checkpoints, source_name)
    use_settings(allow_user_models=True)

    def no_network(*args, **kwargs):
        raise AssertionError("a refused model must not touch the network")

    monkeypatch.setattr(socket, "create_connection", no_network)
    with caplog.at_level(logging.WARNING, logger="attn_demos.tasks.registry"), pytest.raises(ModelLoadError) as error:
        explore("hello", source=source)
    assert str(error.value) == NAMED_MODEL_REFUSED
    assert reason in caplog.text
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, "hello", 0, "mean", False, source)
    seen(f"model override · {case}", assert_refused(out, NAMED_MODEL_REFUSED))
    assert not bad_checkpoints["remote marker"].exists(), "remote code was executed"
    assert not bad_checkpoints["pickle marker"].exists(), "a pickle was loaded"


def test_offline_hub_id_is_refused_before_any_hub_call(configured, monkeypatch, caplog, use_settings):
    """Fast by construction: no config download is even attempted (so no 30 s of retries)."""
    import transformers

    def no_download(*args, **kwargs):
        raise AssertionError("from_pretrained must not be called for an unreachable Hub id")

    use_settings(allow_user_models=True)
    monkeypatch.setattr(transformers.AutoConfig, "from_pretrained", no_download)
    with caplog.at_level(logging.WARNING, logger="attn_demos.tasks.registry"), pytest.raises(ModelLoadError):
        explore("hello", source="no-such-org/no-such-model")
    assert "python scripts/download_models.py" in caplog.text and "pass the local folder" in caplog.text


def test_model_override_with_the_flag_works_and_wrong_kinds_are_named(configured, checkpoints, use_settings):
    use_settings(allow_user_models=True)
    out = panel(explorer_panel.explore, explorer_panel.RUN_OUTPUTS, "the cat sat", 0, "mean", False, str(checkpoints["bert"]))
    assert_verified(out)
    assert out["numbers"]["query_tokens"] == ["[CLS]", "the", "cat", "sat", "[SEP]"]
    wrong = {
        "explorer given a seq2seq model": (
            explorer_panel.explore, explorer_panel.RUN_OUTPUTS, "hello", 0, "mean", False, str(checkpoints["bart"]),
            "is not a text encoder"),
        "translation given BERT": (
            seq2seq_panel.translate, seq2seq_panel.RUN_OUTPUTS, "hello", "mean", "mean", False, 1,
            str(checkpoints["bert"]), NAMED_MODEL_REFUSED),
        "image tab given BERT": (
            images_panel.classify_image, images_panel.RUN_OUTPUTS, Image.new("RGB", (8, 8)), "mean", "mean",
            str(checkpoints["bert"]), NAMED_MODEL_REFUSED),
        "QA given ViT": (
            qa_panel.answer, qa_panel.RUN_OUTPUTS, "q", "c", "mean", "mean", "answer", str(checkpoints["vit"]),
            NAMED_MODEL_REFUSED),
    }
    for case, (function, outputs, *args, fragment) in wrong.items():
        seen(f"model override · {case}", assert_refused(panel(function, outputs, *args), fragment))


# ---------------------------------------------------------------- through the app ---------------


@pytest.fixture(scope="module")
def client(app_server):
    from gradio_client import Client

    _, url = app_server
    return Client(url, verbose=False)



def call(client, api_name: str, outputs: tuple[str, ...], *args) -> dict:
    return dict(zip(wiring.api_outputs(outputs), client.predict(*args, api_name=api_name)))


APP_CASES = {
    "basics, not JSON": ("/basics", basics_panel.OUTPUTS, ("[[1, 0,", SEED_KEY, SEED_VALUE), "not valid JSON"),
    "basics, NaN": ("/basics", basics_panel.OUTPUTS, ("[[NaN, 0, 1]]", SEED_KEY, SEED_VALUE), "NaN and infinity"),
    "explore, only control characters": (
        "/explore", explorer_panel.RUN_OUTPUTS, ("\x00\u200b", 0, "mean", False, ""), "only control characters"),
    "explore, model id without the flag": (
        "/explore", explorer_panel.RUN_OUTPUTS, ("hello", 0, "mean", False, "gpt2"), "configured models only"),
    "translate, whitespace": (
        "/translate", seq2seq_panel.RUN_OUTPUTS, ("   ", "mean", "mean", False, 1, ""), "is empty"),
    "answer, empty context": (
        "/answer", qa_panel.RUN_OUTPUTS, ("Where?", "", "mean", "mean", "answer", ""), "The context is empty"),
    "summarize, empty": ("/summarize", seq2seq_panel.RUN_OUTPUTS, ("", "mean", "mean", False, 1, ""), "is empty"),
}


@pytest.mark.parametrize("case", APP_CASES)
def test_bad_input_through_the_app_then_a_good_request(client, case):
    api_name, outputs, args, fragment = APP_CASES[case]
    out = call(client, api_name, outputs, *args)
    status = out["status"]
    assert status.startswith("⚠️ ") and fragment in status and "\n" not in status, status
    seen(f"app {api_name} · {case.split(', ', 1)[1]}", status)
    good = call(client, "/basics", basics_panel.OUTPUTS, "[[1, 0, 1]]", SEED_KEY, SEED_VALUE)
    assert good["status"].startswith("torch and numpy ✓ agree")
    assert good["numbers"]["weights_corner"][0][0] == pytest.approx(np.exp(1 / np.sqrt(3)) / (np.exp(1 / np.sqrt(3)) + 1))


def test_model_override_through_the_app_with_the_flag(client, bad_checkpoints, use_settings):
    """The setting is read per request, so setting it here (the server runs in this process) enables it."""
    use_settings(allow_user_models=True)
    out = call(client, "/explore", explorer_panel.RUN_OUTPUTS, "hello", 0, "mean", False,
               str(bad_checkpoints["pickle only"]))
    assert out["status"] == f"⚠️ {NAMED_MODEL_REFUSED}"
    assert not bad_checkpoints["pickle marker"].exists()
    seen("app /explore · pickle-only folder (flag on)", out["status"])
    good = call(client, "/explore", explorer_panel.RUN_OUTPUTS, "Attention is all you need.", 0, "mean", False, "")
    assert good["badge"].endswith("✓") and good["numbers"]["query_tokens"][0] == "[CLS]"


def test_corrupt_upload_through_the_app_gets_a_status(client, tmp_path):
    from gradio_client import handle_file

    path = tmp_path / "broken.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n certainly not an image")
    try:
        out = call(client, "/classify_image", images_panel.RUN_OUTPUTS, handle_file(str(path)), "mean", "mean", "")
    finally:  # whatever happened, the app still answers
        good = call(client, "/basics", basics_panel.OUTPUTS, "[[1, 0, 1]]", SEED_KEY, SEED_VALUE)
        assert good["status"].startswith("torch and numpy ✓ agree")
    assert out["status"] == "⚠️ The file is not a readable image (corrupt or unsupported format)."
    assert out["badge"] is None and out["overlay"] is None and not out["labels"]  # nothing old stays (Label sends {})
