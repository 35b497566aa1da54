import numpy as np
import pytest

rng = np.random.default_rng(0)


@pytest.mark.parametrize(("shape", "attrs"), [
    ((2, 9), {"min_gram_length": 1, "max_gram_length": 2, "max_skip_count": 2, "mode": "TF"}),
    ((12,), {"min_gram_length": 2, "max_gram_length": 3, "max_skip_count": 1, "mode": "TFIDF",
             "weights": [1.0, 2.0, 0.5, 3.0, 1.5, 0.25, 4.0]}),
])
def test_tfidf_vectorizer(check, shape, attrs):
    x = rng.integers(2, 6, shape).astype(np.int64)
    # unigrams 2, 3; bigrams (2,3), (3,2), (4,4); trigrams (2,3,4), (5,5,5)
    pool = {"pool_int64s": [2, 3, 2, 3, 3, 2, 4, 4, 2, 3, 4, 5, 5, 5],
            "ngram_counts": [0, 2, 8], "ngram_indexes": [6, 0, 1, 2, 3, 4, 5]}
    check("TfIdfVectorizer", {"x": x}, opset=9, **pool, **attrs)
