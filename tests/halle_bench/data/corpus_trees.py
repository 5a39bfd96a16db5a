"""The chapters of the small espeak-ng corpora the data tests build (see conftest.py)."""

from __future__ import annotations

from halle_bench.data.demo import passage, split_sentences
from halle_bench.data.espeak_corpora import Chapter

SENTENCES = tuple(split_sentences(passage()))

# Two readers; reader 1001 has two chapters, so a prompt may come from the other one.
LS_CHAPTERS = (
    Chapter("1001", "5001", "en-us", SENTENCES[0:9]),
    Chapter("1001", "5002", "en-us", SENTENCES[9:13]),
    Chapter("2002", "6001", "en-gb+f3", SENTENCES[13:24], speed=175),
)
LTTS_CHAPTERS = (
    Chapter("84", "121123", "en-us+m3", SENTENCES[24:31]),
    Chapter("174", "50561", "en-gb", SENTENCES[31:36]),
)
