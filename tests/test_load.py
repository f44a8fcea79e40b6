"""Load and concurrency: the app under concurrent requests on every tab (all answers checked, memory
back to its level), models loaded once when first requests race, and threads sharing one model
or one tokenizer never see each other's data. Counts and timeouts are bounded; nothing asserts
speed."""

from __future__ import annotations

import gc
import json
import queue
import re
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from attn_demos.core.pooling import display_tokens
from attn_demos.ui import basics as basics_panel
from attn_demos.ui import explorer as explorer_panel
from attn_demos.ui import images as images_panel
from attn_demos.ui import qa as qa_panel
from attn_demos.ui import seq2seq as seq2seq_panel
from attn_demos.ui import wiring

TOL = 1e-5
CLIENTS = 8  # concurrent gradio_client clients (threads)
ROUNDS_OF_SIX = 4  # 4 × (one request per endpoint) = 24 concurrent requests
REQUEST_TIMEOUT = 240  # seconds, per request
# RSS of this process (it hosts the server) after the load + gc, minus RSS after a 12-request
# warm-up of the same mix. Measured here (6 runs): +30 to +66 MB for 24 requests; glibc keeps
# freed memory in per-thread arenas, so some growth is not a leak. 150 MB leaves room for that
# and still catches any leak of 6 MB or more per request (a retained model copy, image or large
# attention result); smaller leaks need longer runs than this test makes.
RSS_SLACK_MB = 150


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


# ---------------------------------------------------------------- the app under load ------------


@pytest.fixture(scope="module")
def app_url(app_server):
    return app_server[1]



def badge_error(badge: str) -> float:
    assert badge.startswith("recomputed from weights: max |Δ| ") and badge.endswith("✓"), badge
    return float(badge.split("|Δ| ")[1].split()[0])


def exported(client, api_name: str, *args) -> dict:
    """The full numbers of what this client's session shows, through the tab's Export endpoint."""
    status, _, json_path = client.predict(*args, api_name=api_name)
    assert status == "Exported.", status
    return json.loads(Path(json_path).read_text())


class Mix:
    """The requests of one round, each with an answer checker that does not trust the app's code."""

    def __init__(self, checkpoints, minilm_path, image_path: Path):
        from transformers import AutoTokenizer

        self.minilm = AutoTokenizer.from_pretrained(minilm_path)
        self.marian = AutoTokenizer.from_pretrained(checkpoints["marian"])
        self.bart = AutoTokenizer.from_pretrained(checkpoints["bart"])
        self.distilbert = AutoTokenizer.from_pretrained(checkpoints["distilbert"])
        self.image_path = image_path

    def requests(self, round_index: int) -> list[tuple]:
        """(api_name, args, output names, checker) × 6, texts varying with the round."""
        from gradio_client import handle_file

        rng = np.random.default_rng(round_index)
        q, k, v = rng.normal(size=(2, 3)), rng.normal(size=(4, 3)), rng.normal(size=(4, 2))
        sentence = ["The cat sat on the mat.", "The dog waited by the door.", "It was raining in the city.",
                    "Attention is all you need."][round_index % 4]
        article = "Heavy rain caused the river to rise by almost two metres overnight, flooding several fields."
        return [
            ("/basics", (str(q.tolist()), str(k.tolist()), str(v.tolist())), basics_panel.OUTPUTS,
             lambda out, client: self.check_basics(out, q, k, v)),
            ("/explore", (sentence, round_index % 6, "mean", False, ""), explorer_panel.RUN_OUTPUTS,
             lambda out, client: self.check_explore(out, client, sentence, round_index % 6)),
            ("/translate", (sentence, "mean", "mean", False, 2, ""), seq2seq_panel.RUN_OUTPUTS,
             lambda out, client: self.check_seq2seq(out, client, "/translate_export", self.marian, sentence)),
            ("/answer", ("Where did the cat sleep?", "The cat slept on the warm windowsill.", "mean", "mean",
                         "answer", ""), qa_panel.RUN_OUTPUTS,
             lambda out, client: self.check_answer(out, "The cat slept on the warm windowsill.")),
            ("/summarize", (article, "mean", "mean", False, 2, ""), seq2seq_panel.RUN_OUTPUTS,
             lambda out, client: self.check_seq2seq(out, client, "/summarize_export", self.bart, article)),
            ("/classify_image", (handle_file(str(self.image_path)), "mean", "mean", ""), images_panel.RUN_OUTPUTS,
             self.check_image),
        ]

    @staticmethod
    def check_basics(out, q, k, v):
        scores = q @ k.T / np.sqrt(q.shape[1])  # (2, 4), the textbook formula, here in the test
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        assert out["status"].startswith("torch and numpy ✓ agree"), out["status"]
        shown = 0.5e-6  # the page's numbers are rounded to 6 decimals (the download holds them all)
        np.testing.assert_allclose(out["numbers"]["weights_corner"], weights, rtol=0, atol=shown)
        np.testing.assert_allclose(out["numbers"]["output_corner"], weights @ v, rtol=0, atol=shown)

    def check_explore(self, out, client, sentence, layer):
        tokens = display_tokens(["[CLS]", *self.minilm.tokenize(sentence), "[SEP]"])
        assert out["numbers"]["query_tokens"] == tokens[:8] and out["numbers"]["shape"] == [len(tokens)] * 2
        assert badge_error(out["badge"]) <= TOL
        full = exported(client, "/explore_export", layer, "mean", False)  # this session's own result
        assert full["query_tokens"] == tokens and full["key_tokens"] == tokens and full["layer"] == layer
        matrix = np.asarray(full["matrix"])  # (T, T)
        assert matrix.shape == (len(tokens), len(tokens))
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)  # rows of a softmax, 6 decimals

    @staticmethod
    def check_seq2seq(out, client, export_api, tokenizer, text):
        pieces = tokenizer.convert_ids_to_tokens(tokenizer(text)["input_ids"])
        source = display_tokens(pieces)  # what a person reads; the export keeps the pieces apart
        assert out["numbers"]["key_tokens"] == source[:8] and source[-1] == "</s>"
        assert badge_error(out["badge"]) <= TOL
        full = exported(client, export_api, "mean", "mean", False, 0)
        assert full["key_tokens"] == source and full["key_pieces"] == pieces and full["input_text"] == text
        matrix = np.asarray(full["matrix"])  # (target, source)
        assert matrix.shape == (len(full["query_tokens"]), len(source))
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-5)

    def check_answer(self, out, context):
        assert out["numbers"]["context_tokens"] == len(self.distilbert.tokenize(context))  # the checkpoint's own pieces
        assert len(re.findall(r'class="attn-token[ "]', out["highlight"])) == out["numbers"]["context_tokens"]
        assert badge_error(out["badge"]) <= TOL

    @staticmethod
    def check_image(out, client):
        assert len(out["labels"]["confidences"]) == 5
        assert {c["label"] for c in out["labels"]["confidences"]} == {"cat", "dog", "bird", "car", "tree"}
        assert out["numbers"]["grid"] == [4, 4] and np.asarray(out["numbers"]["cls_to_patches"]).shape == (4, 4)
        assert badge_error(out["badge"]) <= TOL


def fire(url: str, requests: list[tuple], clients: queue.Queue) -> list[str]:
    """Run every request concurrently, each on a client no other thread is using; return failures."""

    def one(request) -> str | None:
        api_name, args, names, check = request
        client = clients.get(timeout=REQUEST_TIMEOUT)
        try:
            values = client.submit(*args, api_name=api_name).result(timeout=REQUEST_TIMEOUT)
            out = dict(zip(wiring.api_outputs(names), values))
            assert not str(out["status"]).startswith("⚠️"), out["status"]
            check(out, client)
            return None
        except Exception as error:  # collected: every request is checked, then all are reported
            return f"{api_name}: {type(error).__name__}: {error}"
        finally:
            clients.put(client)

    with ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        futures = [pool.submit(one, request) for request in requests]
        done, not_done = wait(futures, timeout=REQUEST_TIMEOUT * 2)
    return [f.result() for f in done if f.result()] + [f"{len(not_done)} requests did not finish"] * bool(not_done)


def test_concurrent_requests_on_every_tab_answer_correctly_and_memory_settles(
    app_url, checkpoints, minilm_path, tmp_path
):
    from gradio_client import Client

    image_path = tmp_path / "square.png"
    Image.new("RGB", (64, 48), "teal").save(image_path)
    mix = Mix(checkpoints, minilm_path, image_path)
    clients: queue.Queue = queue.Queue()
    for _ in range(CLIENTS):
        clients.put(Client(app_url, verbose=False))

    # Warm-up: 12 requests of the same mix, concurrently: every model loaded, server threads started.
    warm_up = [request for r in range(2) for request in mix.requests(r)]
    assert fire(app_url, warm_up, clients) == []
    gc.collect()
    before = rss_mb()

    load = [request for r in range(ROUNDS_OF_SIX, 2 * ROUNDS_OF_SIX) for request in mix.requests(r)]
    assert len(load) >= 20 and len({r[0] for r in load}) == 6
    failures = fire(app_url, load, clients)
    assert failures == [], "\n".join(failures)

    gc.collect()
    after = rss_mb()
    print(f"\nload: {len(load)} requests on {CLIENTS} clients; RSS {before:.0f} MB -> {after:.0f} MB "
          f"({after - before:+.0f} MB)")
    assert after - before < RSS_SLACK_MB, f"RSS grew {after - before:.0f} MB over {len(load)} requests"


# ---------------------------------------------------------------- loading once ------------------


def test_concurrent_first_requests_load_a_model_once(checkpoints, tmp_path, monkeypatch):
    from attn_demos.adapters import loading
    from attn_demos.tasks import registry

    folder = tmp_path / "never-loaded-bert"  # a new path: a cold cache for this test
    shutil.copytree(checkpoints["bert"], folder)
    real_load, calls = loading.load_model, []
    started = threading.Event()

    def counting_load(*args, **kwargs):
        calls.append(args)
        started.set()
        return real_load(*args, **kwargs)

    monkeypatch.setattr(loading, "load_model", counting_load)
    barrier = threading.Barrier(8)
    results, errors = [], []

    def first_request():
        barrier.wait(timeout=60)
        try:
            results.append(registry.get_model("explore", str(folder)))
        except Exception as error:
            errors.append(error)

    threads = [threading.Thread(target=first_request) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and len(results) == 8
    assert len(calls) == 1 and started.is_set()
    assert all(r is results[0] for r in results)
    assert type(results[0].model).__name__ == "BertModel"  # the explorer's "base" head


def test_concurrent_first_loads_of_different_models_load_the_saved_weights(checkpoints, tmp_path):
    """from_pretrained is not thread-safe: loaded side by side, models failed on the meta device or
    came up with their tied embeddings re-initialised. Every tensor must equal the file's."""
    import torch

    from attn_demos.adapters.loading import load_model_cached

    heads = {"marian": "seq2seq", "bart": "seq2seq", "t5": "seq2seq", "vit": "image"}
    folders = {family: shutil.copytree(checkpoints[family], tmp_path / family) for family in heads}
    barrier, results, errors = threading.Barrier(len(heads)), {}, []

    def first_load(family: str):
        barrier.wait(timeout=60)
        try:
            results[family] = load_model_cached(str(folders[family]), heads[family])
        except Exception as error:
            errors.append(f"{family}: {type(error).__name__}: {error}")

    threads = [threading.Thread(target=first_load, args=(family,)) for family in heads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert errors == [] and set(results) == set(heads)
    for family, loaded in results.items():  # against the same folder loaded alone, afterwards
        alone = type(loaded.model).from_pretrained(folders[family], attn_implementation="eager").state_dict()
        together = loaded.model.state_dict()
        assert together.keys() == alone.keys(), family
        assert all(torch.equal(together[name], alone[name]) for name in alone), family


def test_a_loading_model_does_not_hold_up_requests_for_loaded_ones(monkeypatch):
    """While one model loads (held here until released), a cached one is still served."""
    from attn_demos.adapters import loading

    release = threading.Event()

    def fake_load(source, *args):
        if source == "slow":
            release.wait(timeout=120)
        return f"model {source}"

    monkeypatch.setattr(loading, "load_model", fake_load)
    monkeypatch.setattr(loading, "_cache", {})
    assert loading.load_model_cached("ready") == "model ready"
    slow = threading.Thread(target=loading.load_model_cached, args=("slow",))
    slow.start()
    served = []
    fast = threading.Thread(target=lambda: served.append(loading.load_model_cached("ready")))
    fast.start()
    fast.join(timeout=60)  # a deadlock guard, not a speed check: "slow" is held until released below
    still_waiting = fast.is_alive()
    release.set()
    slow.join(timeout=60)
    fast.join(timeout=60)
    assert not still_waiting and served == ["model ready"]


# ---------------------------------------------------------------- shared model, shared tokenizer -


SHARED_MODEL_RUNS = {
    # model: (threads, passes per thread). MiniLM: real weights, the brief's two threads. Tiny BERT:
    # fast passes, so many captures start and end while other threads are mid-forward (before the
    # fix, 1-2 passes in 1,600 called a half-removed hook without kwargs).
    "minilm": (2, 25),
    "tiny bert": (4, 300),
}


@pytest.mark.parametrize("model", SHARED_MODEL_RUNS)
def test_threads_share_one_model_and_each_recomputes_its_own_pass(minilm_path, tiny_model, model):
    """Capture hooks record only the calling thread's forward passes: with different inputs running
    at the same time on the same modules, every recomputation matches its own pass."""
    from attn_demos.adapters.extract import forward_with_attention, tokenize
    from attn_demos.adapters.families import ENCODER
    from attn_demos.adapters.loading import load_model

    loaded = load_model(str(minilm_path)) if model == "minilm" else tiny_model("bert")
    texts = ["the cat sat on the mat .", "the dog waited by the door of the house while it was raining ."]
    inputs = [tokenize(loaded, [text]) for text in texts]
    reference = [forward_with_attention(loaded, batch, side).maps[ENCODER].weights for batch, side in inputs]
    assert reference[0].shape[-1] != reference[1].shape[-1]
    threads, passes = SHARED_MODEL_RUNS[model]
    barrier, failures = threading.Barrier(threads), []

    def worker(index: int):
        batch, side = inputs[index % 2]
        barrier.wait(timeout=60)
        for step in range(passes):
            try:
                result = forward_with_attention(loaded, batch, side)
                library, recomputed = result.maps[ENCODER].weights, result.recomputed[ENCODER]  # (1, L, H, T, T)
                assert recomputed.shape == library.shape == reference[index % 2].shape
                assert float((library - recomputed).abs().max()) <= TOL
                assert float((library - reference[index % 2]).abs().max()) <= 1e-6
            except Exception as error:
                failures.append(f"thread {index}, pass {step}: {type(error).__name__}: {error}")

    workers = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in workers)
    assert failures == [], failures[:3]


def test_concurrent_tokenization_keeps_each_requests_truncation(tiny_model):
    """A fast tokenizer stores truncation settings on its shared backend: without a lock, a short
    text's 'no truncation' leaked into a long text's encoding (2,102 tokens reached a 128-token model)."""
    from attn_demos.tasks.inputs import tokenize_text

    loaded = tiny_model("bert")
    long_text, short_text = "the cat sat on the mat . " * 300, "the cat"  # 2,100 words; 2 words
    failures = []

    def one(i: int):
        text = long_text if i % 2 else short_text
        batch, side, notices = tokenize_text(loaded, text)
        expected = 128 if i % 2 else 4  # the model's limit; [CLS] the cat [SEP]
        if batch["input_ids"].shape != (1, expected) or len(side.tokens[0]) != expected:
            failures.append(f"request {i}: {tuple(batch['input_ids'].shape)} tokens, expected {expected}")
        if bool(i % 2) != any("kept 128 of 2,102 tokens" in n for n in notices):
            failures.append(f"request {i}: notices {notices}")

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(800), timeout=120))
    assert failures == [], failures[:5]


def test_concurrent_questions_and_explorer_requests_on_shared_models(checkpoints):
    from transformers import AutoTokenizer

    from attn_demos.tasks.explorer import explore
    from attn_demos.tasks.qa import answer

    bert, distilbert = str(checkpoints["bert"]), str(checkpoints["distilbert"])
    question_tokens = AutoTokenizer.from_pretrained(distilbert).tokenize("where did the cat sit ?")
    long_context = "the cat sat on the mat . " * 300

    def one(i: int) -> str | None:
        try:
            if i % 3 == 0:
                result = answer("where did the cat sit ?", long_context, source=distilbert)
                assert len(result.tokens) <= 128 and result.question_index == list(range(1, 1 + len(question_tokens)))
                assert result.windows > 1 and result.view().verified
            elif i % 3 == 1:
                assert len(explore(long_context, source=bert).tokens) == 128
            else:
                assert explore("the cat", source=bert).tokens == ["[CLS]", "the", "cat", "[SEP]"]
            return None
        except Exception as error:
            return f"request {i}: {type(error).__name__}: {error}"

    with ThreadPoolExecutor(max_workers=8) as pool:
        failures = [f for f in pool.map(one, range(120), timeout=240) if f]
    assert failures == [], failures[:5]
