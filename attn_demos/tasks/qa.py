"""Extractive question answering: the answer span, and the context as the answer (or the
question) attends to it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from attn_demos.adapters.extract import Side, forward_with_attention, token_labels
from attn_demos.adapters.families import ENCODER
from attn_demos.core.aggregate import rollout
from attn_demos.errors import BadInputError
from attn_demos.tasks.hardware import on_gpu
from attn_demos.tasks.inputs import clean_text, token_limit, tokenizer_lock
from attn_demos.tasks.registry import get_model, model_notices
from attn_demos.tasks.views import AttentionView, SelfAttentionStack, make_view, select

MAX_ANSWER_TOKENS = 30
LOW_CONFIDENCE = 0.1


@dataclass
class QAResult(SelfAttentionStack):
    model: str
    answer: str
    score: float  # P(start) · P(end) of the chosen span
    span: tuple[int, int]  # token indices (inclusive) of the answer
    tokens: list[str]  # (T,) [CLS] question [SEP] context [SEP]
    question_index: list[int]  # token positions of the question
    context_index: list[int]  # token positions of the context
    library: np.ndarray  # (L, H, T, T)
    recomputed: np.ndarray  # (L, H, T, T)
    notices: list[str] = field(default_factory=list)

    @property
    def answer_index(self) -> list[int]:
        return list(range(self.span[0], self.span[1] + 1))

    def view(self, layer: int | str = 0, head: int | str = "mean", words: bool = False) -> AttentionView:
        return make_view(
            "self-attention", self.library, self.recomputed, self.tokens, self.tokens, layer, head, words, self.notices
        )

    def context_scores(self, attend_from: str = "answer", layer: int | str = "mean", head: int | str = "mean"):
        """(context tokens, (C,) scores): mean attention from the answer (or question) tokens to the context."""
        rows = self.answer_index if attend_from == "answer" else self.question_index
        matrix = rollout(self.library) if head == "rollout" else select(self.library, layer, head)  # (T, T)
        scores = matrix[rows][:, self.context_index].mean(axis=0)  # (C,)
        return [self.tokens[i] for i in self.context_index], scores


@on_gpu
def answer(question: str, context: str, source: str | None = None, max_tokens: int = 384) -> QAResult:
    """Find the best answer span of `question` in `context` and keep the attention of that pass."""
    question, notices = clean_text(question, "question")
    context, context_notices = clean_text(context, "context")
    notices += context_notices
    loaded = get_model("answer", source)
    if loaded.is_encoder_decoder or loaded.family.vision:
        raise BadInputError(f"{loaded.source} is not an extractive question-answering model")
    tokenizer = loaded.preprocessor
    limit = token_limit(loaded, max_tokens)
    with tokenizer_lock(tokenizer):
        full = len(tokenizer(question, context, truncation=False)["input_ids"])
        try:
            batch = tokenizer([question], [context], return_tensors="pt", truncation="only_second", max_length=limit)
        except Exception:  # the question alone is longer than the limit
            raise BadInputError(
                f"the question is too long for this model: question and context share {limit} tokens; "
                "shorten the question"
            ) from None
    if full > limit:
        notices.append(f"Context truncated to the model's limit: kept {limit} of {full:,} tokens.")
    if "token_type_ids" not in _forward_arguments(loaded):
        batch.pop("token_type_ids", None)  # DistilBERT has no segment embeddings
    sequence_ids = batch.sequence_ids(0)
    tokens = token_labels(tokenizer, batch["input_ids"][0].tolist())
    side = Side([tokens], batch["attention_mask"].bool())
    result = forward_with_attention(loaded, dict(batch), side)
    context_index = [i for i, s in enumerate(sequence_ids) if s == 1]
    if not context_index:
        raise BadInputError("the context is empty after truncation; shorten the question")
    start, end, score = best_span(result.outputs.start_logits[0].cpu(), result.outputs.end_logits[0].cpu(), context_index)
    answer_text = tokenizer.decode(batch["input_ids"][0][start : end + 1], skip_special_tokens=True).strip()
    if not answer_text:
        notices.append("The model found no answer in the context.")
    elif score < LOW_CONFIDENCE:
        notices.append(f"Low confidence ({score:.1%}): the answer may not be in the context.")
    return QAResult(
        model=loaded.source,
        answer=answer_text,
        score=score,
        span=(start, end),
        tokens=tokens,
        question_index=[i for i, s in enumerate(sequence_ids) if s == 0],
        context_index=context_index,
        library=result.maps[ENCODER].weights[0].cpu().numpy(),
        recomputed=result.recomputed[ENCODER][0].cpu().numpy(),
        notices=model_notices(loaded) + notices,
    )


def best_span(start_logits: torch.Tensor, end_logits: torch.Tensor, allowed: list[int]) -> tuple[int, int, float]:
    """The (start, end) within `allowed` positions maximising P(start)·P(end), start ≤ end < start + 30."""
    start_p = torch.softmax(start_logits.double(), dim=-1)  # (T,)
    end_p = torch.softmax(end_logits.double(), dim=-1)  # (T,)
    keep = torch.zeros_like(start_p, dtype=torch.bool)
    keep[allowed] = True
    joint = start_p[:, None] * end_p[None, :]  # (T, T)
    offsets = torch.arange(len(start_p))
    valid = (offsets[None, :] >= offsets[:, None]) & (offsets[None, :] < offsets[:, None] + MAX_ANSWER_TOKENS)
    valid &= keep[:, None] & keep[None, :]
    joint = joint.masked_fill(~valid, -1.0)
    flat = int(joint.argmax())
    start, end = divmod(flat, joint.shape[1])
    return start, end, float(joint[start, end])


def _forward_arguments(loaded) -> set[str]:
    import inspect

    return set(inspect.signature(loaded.model.forward).parameters)
