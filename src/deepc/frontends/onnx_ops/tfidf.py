"""ONNX TfIdfVectorizer over integer tokens -> `tfidf_vectorizer` with the pool spelled out."""

from __future__ import annotations

from deepc.errors import ConversionError
from deepc.frontends.builder import GraphBuilder
from deepc.frontends.onnx_node import OnnxNode
from deepc.frontends.onnx_ops import converter


def pool_ngrams(pool: list[int], counts: list[int]) -> list[tuple[int, ...]]:
    """The pool's n-grams in order: counts[i] is where those of length i+1 begin."""
    grams: list[tuple[int, ...]] = []
    for i, begin in enumerate(counts):
        end = counts[i + 1] if i + 1 < len(counts) else len(pool)
        n = i + 1
        grams.extend(tuple(pool[p:p + n]) for p in range(begin, end, n))
    return grams


@converter("TfIdfVectorizer")
def tfidf_vectorizer(b: GraphBuilder, n: OnnxNode) -> None:
    mode = n.attr("mode", "TF")
    if n.attr("pool_strings", None) or mode == "IDF":
        raise ConversionError(f"node {n.name!r} (TfIdfVectorizer): "
                              f"{'string tokens' if mode != 'IDF' else 'mode IDF'} is not "
                              "supported (integer tokens in mode TF or TFIDF are)")
    grams = pool_ngrams(list(n.attr("pool_int64s")), list(n.attr("ngram_counts")))
    index = [int(k) for k in n.attr("ngram_indexes")]
    weights = [float(w) for w in (n.attr("weights", None) or [])] if mode == "TFIDF" else []
    attrs = {"pool": tuple(grams), "out_index": tuple(index),
             "weights": tuple(weights or [1.0] * len(grams)),
             "min_gram": int(n.attr("min_gram_length")),
             "max_gram": int(n.attr("max_gram_length")),
             "max_skip": int(n.attr("max_skip_count")), "size": max(index) + 1}
    b.emit("tfidf_vectorizer", n.inputs[:1], attrs, outputs=n.outputs, name=n.name)
