"""Attacking a population of networks gives the per-image outcomes of attacking them one by one.

Three small CNNs on scikit-learn's 8x8 digits, trained for different numbers of steps so that they get
different inputs right, attacked in float64 (rounding of the batched kernels stays far below anything
that could flip an outcome) with every family: the population's adversarial images must match the
per-network torchattacks runs (bit for bit where the kernels are the same, within 1e-12 otherwise) and
its per-image success bits must be identical, for shared and per-member labels, and `evaluate_population`
must return each member's `run_evaluation` result, cascades and batches included.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchattacks

from robust_glo.data import load_dataset
from robust_glo.errors import ConfigError
from robust_glo.models import create_model
from robust_glo.robustness import generate_adversarial, run_evaluation
from robust_glo.robustness.attacks import autoattack, parse_attack
from robust_glo.robustness.population import (
    PopulationModel,
    evaluate_population,
    generate_adversarial_population,
    is_ported,
    runners,
)

N = 24


def _train(info, train, seed: int, steps: int, dtype: torch.dtype) -> torch.nn.Module:
    model = create_model("digits-cnn", info, seed=seed).to(dtype)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    images = train.images.to(dtype)
    for _ in range(steps):
        idx = torch.randint(0, len(train.labels), (64,), generator=g)
        loss = F.cross_entropy(model(images[idx]), train.labels[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    torch.set_num_threads(1)
    splits = load_dataset("digits", test_size=100)
    members = [(0, 60), (1, 30), (2, 15)]  # (seed, steps): three accuracies, three still-correct sets
    return splits, [_train(splits.info, splits.train, s, k, torch.float64) for s, k in members]


def _data(digits, dtype=torch.float64, n=N):
    splits, _ = digits
    return splits.test.images[:n].to(dtype), splits.test.labels[:n]


def _fooled(models, adv: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-member success bits `(P, N)` of adversarial inputs `(P, N, ...)`."""
    labels = labels if labels.dim() == 2 else labels.expand(len(models), -1)
    with torch.no_grad():
        return torch.stack([m(adv[p]).argmax(1) != labels[p] for p, m in enumerate(models)])


def test_population_model_is_each_member(digits):
    nets = digits[1]
    x = torch.rand(3, 5, 1, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    for mode in ("loop", "vmap"):
        pop = PopulationModel(nets, mode=mode)
        logits = pop(x)
        assert logits.shape == (3, 5, 10)
        for p, m in enumerate(nets):
            torch.testing.assert_close(logits[p], m(x[p]), rtol=0, atol=1e-12)
        assert not pop.stacked_params["net.0.weight"].requires_grad
    with pytest.raises(ConfigError, match="one architecture"):
        PopulationModel([nets[0], create_model("mlp", digits[0].info).double()])
    with pytest.raises(ConfigError, match="one architecture"):
        PopulationModel([nets[0], create_model("digits-cnn", digits[0].info).float()])
    with pytest.raises(ConfigError, match="forward mode"):
        PopulationModel(nets, mode="grouped")


# Every ported family at small budgets (their schedules still run: APGD's checkpoints, PGD's restarts,
# Square's shrinking windows), and the per-member fallback. eps: L-infinity 0.1, L2 radius 0.5.
ATTACKS = [
    "fgsm",
    "pgd:steps=5",
    "pgd:steps=5:restarts=3",
    "pgd:norm=l2:steps=5",
    "apgd-ce:steps=20",
    "apgd-dlr:steps=20",
    "apgd-t:steps=20",
    "apgd-ce:norm=l2:steps=20",
    "apgd-t:norm=l2:steps=12:targets=4",
    "square:n_queries=300",
    "square:n_queries=60:restarts=2",
    "square:norm=l2:n_queries=40",
]


@pytest.mark.parametrize("attack", ATTACKS)
def test_population_attack_matches_per_network_torchattacks(digits, attack):
    nets = digits[1]
    x, y = _data(digits)
    eps = 0.5 if "l2" in attack else 0.1
    reference = torch.stack([generate_adversarial(m, x, y, attack, eps, seed=3) for m in nets])
    fooled = _fooled(nets, reference, y)
    assert fooled.any() and not fooled.all(), "the budget should break some inputs and not others"
    for mode in ("loop", "vmap"):
        adv = generate_adversarial_population(nets, x, y, attack, eps, seed=3, forward=mode)
        torch.testing.assert_close(adv, reference, rtol=0, atol=1e-12)
        assert torch.equal(_fooled(nets, adv, y), fooled), f"{attack} ({mode}): outcomes differ"
        if mode == "loop" and "l2" not in attack:
            assert torch.equal(adv, reference)  # the same kernels member by member: bit for bit
    assert is_ported(parse_attack(attack)) == ("square:norm=l2" not in attack)


def test_each_member_keeps_its_own_labels(digits):
    nets = digits[1]
    x, y = _data(digits)
    with torch.no_grad():
        own = nets[2](x).argmax(1)  # member 2 is attacked on its own predictions: everything starts correct
    labels = torch.stack([y, y.roll(1), own])
    for attack in ("pgd:steps=5:restarts=2", "apgd-t:steps=12:targets=3", "square:n_queries=100"):
        reference = torch.stack(
            [generate_adversarial(m, x, labels[p], attack, 0.1, seed=p) for p, m in enumerate(nets)]
        )
        adv = generate_adversarial_population(nets, x, labels, attack, 0.1, seed=[0, 1, 2], forward="vmap")
        torch.testing.assert_close(adv, reference, rtol=0, atol=1e-12)
        assert torch.equal(_fooled(nets, adv, labels), _fooled(nets, reference, labels))


@pytest.mark.parametrize("family", ["apgd-ce", "apgd-t", "square"])
def test_population_equals_torchattacks_called_directly(digits, family):
    """Against torchattacks itself (not the project's wrappers): each member's run after manual_seed."""
    nets = digits[1]
    x, y = _data(digits)
    seed = 11
    reference = []
    for m in nets:
        torch.manual_seed(seed)
        if family == "apgd-ce":
            atk = torchattacks.APGD(m, eps=0.1, steps=15, n_restarts=1, seed=seed, loss="ce", rho=0.75)
        elif family == "apgd-t":
            atk = torchattacks.APGDT(m, eps=0.1, steps=15, n_restarts=1, seed=seed, rho=0.75, n_classes=4)
        else:
            atk = torchattacks.Square(
                m, eps=0.1, n_queries=150, p_init=0.8, loss="margin", resc_schedule=False, seed=seed
            )
        reference.append(atk(x, y))
    reference = torch.stack(reference)
    params = {"apgd-ce": {"steps": 15}, "apgd-t": {"steps": 15, "targets": 3}, "square": {"n_queries": 150}}[family]
    spec = ":".join([family, *[f"{k}={v}" for k, v in params.items()]])
    pop = PopulationModel(nets)
    ctx = runners.PopulationContext(pop, 10, torch.device("cpu"))
    resolved = parse_attack(spec).resolved()
    run = runners.population_runner(family, resolved)
    with torch.random.fork_rng():
        adv = run(ctx, x.expand(3, -1, -1, -1, -1), y.expand(3, -1), [N] * 3, 0.1, resolved, [seed] * 3)
    assert torch.equal(adv, reference)


def _cheap_autoattack(monkeypatch):
    cheap = (
        ("apgd-ce", {"steps": 10, "restarts": 1}),
        ("apgd-t", {"steps": 8, "restarts": 1, "targets": 3}),
        ("fab-t", {"steps": 5, "restarts": 1, "targets": 3}),
        ("square", {"n_queries": 60, "restarts": 1, "p_init": 0.8}),
    )
    monkeypatch.setattr(autoattack, "AA_COMPONENTS", cheap)
    monkeypatch.setattr(runners, "AA_COMPONENTS", cheap)


def _same_evaluation(pop, refs) -> None:
    for p, ref in enumerate(refs):
        got = pop.members[p]
        assert torch.equal(got.clean_correct, ref.clean_correct)
        assert got.robust.keys() == ref.robust.keys()
        for label, by_eps in ref.robust.items():
            assert by_eps.keys() == got.robust[label].keys()
            for e, bits in by_eps.items():
                assert torch.equal(got.robust[label][e], bits), f"member {p}: {label} at eps={e}"
        columns = [c for c in ref.results.columns if c not in ("seconds", "max_perturbation")]
        assert got.results[columns].equals(ref.results[columns])
        torch.testing.assert_close(
            torch.tensor(got.results["max_perturbation"].to_numpy()),
            torch.tensor(ref.results["max_perturbation"].to_numpy()),
            rtol=0,
            atol=1e-12,
            equal_nan=True,
        )
        assert list(got.flags["status"]) == list(ref.flags["status"])


def test_evaluate_population_is_run_evaluation_per_member(digits):
    """Cascades, min_eps, both threat models, three batches, one seed per member, per-member labels."""
    nets = digits[1]
    x, y = _data(digits, n=40)
    labels = torch.stack([y, y, y.roll(3)])
    attacks = [
        "fgsm",
        "pgd:steps=5",
        "apgd-ce:steps=20:cascade=true",
        "apgd-t:steps=10:targets=3:cascade=true",
        "square:n_queries=100:cascade=true:min_eps=0.1",
        "pgd:norm=l2:steps=5",
        "apgd-ce:norm=l2:steps=10:cascade=true",
    ]
    kw = dict(attacks=attacks, eps=[0, 0.05, 0.1], eps_l2=[0.5], batch_size=16)
    refs = [run_evaluation(m, x, labels[p], seed=p, **kw) for p, m in enumerate(nets)]
    pop = evaluate_population(nets, x, labels, seed=[0, 1, 2], forward="vmap", **kw)
    _same_evaluation(pop, refs)
    # The members really differ: their correct sets and what the cascade left standing for APGD-T.
    clean = pop.clean_correct
    assert not torch.equal(clean[0], clean[1]) and not torch.equal(clean[1], clean[2])
    standing = pop.robust("apgd-ce:cascade=true:steps=20", 0.05)
    assert len({tuple(row.tolist()) for row in standing}) == 3
    assert pop.accuracy("worst", 0.1).shape == (3,)
    assert torch.equal(pop.robust("worst", 0.1), torch.stack([r.robust["worst"][0.1] for r in refs]))
    assert all(pop.ported.values())
    table = pop.table()
    assert list(table["member"].unique()) == [0, 1, 2] and table.columns[0] == "member"


@pytest.mark.parametrize("forward", ["loop", "vmap"])
def test_fallback_and_autoattack_in_float32(digits, monkeypatch, forward):
    """FAB-T (both threat models) and L2 Square run member by member through torchattacks; `aa-reference`
    composes the ported parts with it. With the vmapped forward (the GPU's) it is that forward that judges
    the member-by-member attacks' outcomes, so both forwards are checked against the per-network runs."""
    _cheap_autoattack(monkeypatch)
    splits = digits[0]
    nets = [_train(splits.info, splits.train, s, k, torch.float32) for s, k in ((4, 40), (5, 20))]
    x, y = _data(digits, torch.float32, n=16)
    attacks = [
        "fab-t:steps=5:targets=3",
        "aa-reference",
        "fab-t:norm=l2:steps=5:targets=3",
        "square:norm=l2:n_queries=40",
    ]
    kw = dict(attacks=attacks, eps=[0.1], eps_l2=[0.5], batch_size=16)
    refs = [run_evaluation(m, x, y, seed=7, **kw) for m in nets]
    pop = evaluate_population(nets, x, y, seed=7, forward=forward, **kw)
    _same_evaluation(pop, refs)
    assert pop.ported == {
        "fab-t:steps=5:targets=3": False,
        "aa-reference": True,
        "fab-t:norm=l2:steps=5:targets=3": False,
        "square:n_queries=40:norm=l2": False,
    }
    held = pop.robust("aa-reference", 0.1)
    assert held.any() and (pop.clean_correct & ~held).any()  # some inputs broken, some standing


def test_population_refusals(digits):
    nets = digits[1]
    x, y = _data(digits)
    with pytest.raises(ConfigError, match="one seed or one per member"):
        evaluate_population(nets, x, y, ["fgsm"], [0.1], seed=[0, 1])
    with pytest.raises(ConfigError, match="labels must have shape"):
        evaluate_population(nets, x, torch.stack([y, y]), ["fgsm"], [0.1])
    with pytest.raises(ConfigError, match="non-empty list"):
        evaluate_population([], x, y, ["fgsm"], [0.1])
    with pytest.raises(ConfigError, match="per-member inputs"):
        evaluate_population(nets, x.expand(2, -1, -1, -1, -1), y, ["fgsm"], [0.1])
    with pytest.raises(ConfigError, match="unknown attack"):
        generate_adversarial_population(nets, x, y, "nope", 0.1)
    with pytest.raises(ConfigError, match="cannot attack a float64"):
        generate_adversarial_population(nets, x, y, "fab-t", 0.1)
