"""The training module: reference data, Orb-v3 losses (Huber, equigrad, confidence), reproducible training,
checkpoints in the official layout, and the equigrad ablation."""

from __future__ import annotations

import json

import ase.build
import numpy as np
import pytest
import torch
from ase.calculators.emt import EMT

from orb_md import build_model, load_model
from orb_md.batch import atoms_to_batch, evaluate
from orb_md.equigrad import rotational_gradient
from orb_md.training import peptide_data, reference_data
from orb_md.training.objectives import IGNORE_BIN, LossWeights, force_error_bins, losses, predict
from orb_md.training.samples import collate, to_samples
from orb_md.training.statistics import fit_new_reference_energies, fit_reference_energies, fit_statistics
from orb_md.training.trainer import TrainingConfig, save_checkpoint, train, trained_elements
from orb_md.training.validation import validation_errors

TINY = dict(latent_dim=16, mlp_hidden_dim=32, head_hidden_dim=16, num_message_passing=2)


def emt_structures(count: int, seed: int, element: str = "Cu") -> list[ase.Atoms]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        atoms = ase.build.bulk(element, "fcc", a=3.6 * rng.uniform(0.97, 1.03), cubic=True)
        atoms.rattle(0.1, rng=rng)
        atoms.calc = EMT()
        out.append(reference_data._labelled(atoms, "test", stress=True))
    return out


def tiny(kind: str = "conservative", seed: int = 0):
    name = f"orb-v3-{kind}-inf-omat"
    return build_model(name, seed=seed, random_statistics=False, **TINY)


def test_emt_labels_are_the_reference_potential():
    atoms = emt_structures(1, seed=3)[0]
    check = atoms.copy()
    check.calc = EMT()
    assert atoms.info["energy"] == pytest.approx(check.get_potential_energy(), abs=1e-12)
    np.testing.assert_allclose(atoms.arrays["forces"], check.get_forces(), atol=1e-12)
    np.testing.assert_allclose(atoms.info["stress"], check.get_stress(), atol=1e-12)


def test_metal_data_is_deterministic_and_covers_the_recipe():
    kwargs = dict(seed=5, elements=("Cu",), alloys=(("Cu", "Au"),), weight={})
    first = reference_data.metal_structures(**kwargs)
    again = reference_data.metal_structures(**kwargs)
    assert len(first) == len(again) == 9 + 20 + 6 + 6 + 25 + 18
    for a, b in zip(first[::7], again[::7]):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.info["energy"] == b.info["energy"]
    sources = {a.info["source"].split("-")[1] for a in first}
    assert {"eos", "crystal", "vacancy", "slab", "md", "alloy"} <= sources
    slabs = [a for a in first if a.info["source"].startswith("emt-slab")]
    assert all(list(a.pbc) == [True, True, False] and "stress" not in a.info for a in slabs)


def test_biomolecular_data_is_deterministic(monkeypatch):
    """Same seed, same frames, bit for bit, whatever OpenMM's default thread count (hydrogen placement, Langevin
    and barostat seeds, and the CPU platform's summation order all fixed)."""
    runs = []
    for threads in ("1", "2"):
        monkeypatch.setenv("OPENMM_CPU_THREADS", threads)
        runs.append(reference_data.peptide_clusters(seed=3, frames_per_temperature=1))
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.info["energy"] == b.info["energy"]
    water = [reference_data.water_boxes(seed=3, frames_per_temperature=1)[-1] for _ in range(2)]
    np.testing.assert_array_equal(water[0].positions, water[1].positions)
    np.testing.assert_array_equal(water[0].cell.array, water[1].cell.array)


def test_peptide_windows_are_deterministic_and_capped():
    """The biomolecular model's data: same seed, same frames bit for bit; each distortion kind present, its
    reference forces below the cap, and its frames away from the thermal ones they started from."""
    runs = [peptide_data.peptide_windows(seed=3, windows=(30,), frames_per_temperature=1) for _ in range(2)]
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a.positions, b.positions)
        assert a.info["energy"] == b.info["energy"]
    sources = [a.info["source"] for a in runs[0]]
    thermal = [a for a in runs[0] if a.info["source"].endswith("K")]
    assert len(thermal) == len(peptide_data.TEMPERATURES_K)
    for kind, count in peptide_data.DISTORTIONS.items():
        frames = [a for a in runs[0] if a.info["source"] == f"amber14-peptide-31-{kind}"]
        assert len(frames) == count, (kind, sources)
        assert max(np.abs(a.arrays["forces"]).max() for a in frames) <= peptide_data.MAX_FORCE_EV_PER_A
        moved = min(min(np.abs(a.positions - t.positions).max() for t in thermal) for a in frames)
        assert moved > 0.01, kind  # every frame was distorted


def test_minimiser_contacts_are_capped_points_on_the_minimiser_path(monkeypatch, one_thread):
    """The bio recipe's stage-2 frames: for a model whose L-BFGS steps run into contacts (random weights of the
    bio architecture), one frame per force cap the end point exceeds, each at that cap (bisection), the same
    frames bit for bit from a second run (one torch thread: with two, torch's CPU sums vary in the last bits)."""
    from orb_md.model.config import BIO_MODEL
    monkeypatch.setattr(peptide_data, "CONTACT_ITERATIONS", (2,))
    monkeypatch.setattr(peptide_data, "CONTACT_THERMAL_STARTS", 1)
    thermal = [a for a in peptide_data.peptide_windows(seed=3, windows=(30,), frames_per_temperature=1)
               if a.info["source"].endswith("K")]
    model = build_model(BIO_MODEL, seed=0)
    runs = [peptide_data.minimiser_contacts(model, thermal, seed=0, windows=(30,)) for _ in range(2)]
    for a, b in zip(*runs, strict=True):
        np.testing.assert_array_equal(a.positions, b.positions)
    caps = peptide_data.CONTACT_FORCE_CAPS_EV_PER_A
    forces = [float(np.abs(a.arrays["forces"]).max()) for a in runs[0]]
    assert len(forces) >= len(caps), forces  # the steps overshoot (measured: all caps from both starts)
    assert all(a.info["source"] == "amber14-peptide-31-contact" for a in runs[0])
    assert all(any(0.98 * cap <= f <= cap for cap in caps) for f in forces), forces
    with pytest.raises(ValueError, match="amber14-peptide-1: 0 thermal frames given, 1 needed as starts"):
        peptide_data.minimiser_contacts(model, thermal, windows=(0,))  # ``thermal`` holds window 31-35 only


def test_new_reference_energies_fit_only_absent_elements(one_thread):
    """Fine-tuning on a new element: its reference energy is fitted to the model's errors, the others stay."""
    model = tiny()
    cu = emt_structures(2, seed=0, element="Cu")
    for atoms in cu:
        atoms.info["energy"] = -3.0 * len(atoms)
    with torch.no_grad():
        model.heads.energy.reference.linear.weight.zero_()
        model.heads.energy.reference.linear.weight.view(-1)[29] = -3.0
    alloy = cu[0].copy()
    alloy.numbers[:2] = 79
    alloy.info["energy"] = -3.0 * 30 - 4.5 * 2
    alloy.arrays["forces"] = np.zeros((len(alloy), 3))
    samples = to_samples(model, [*cu, alloy])
    before = float(predict(model, collate(samples[2:]), create_graph=False).energy)
    assert fit_new_reference_energies(model, samples) == [79]
    reference = model.heads.energy.reference.linear.weight.detach().view(-1)
    assert float(reference[29]) == -3.0
    assert float(reference[79]) == pytest.approx((alloy.info["energy"] - before) / 2, rel=1e-5)
    assert fit_new_reference_energies(model, samples) == []


def test_extxyz_round_trip(tmp_path):
    structures = emt_structures(3, seed=1)
    reference_data.write_dataset(structures, tmp_path / "d.extxyz")
    back = reference_data.read_dataset(tmp_path / "d.extxyz")
    for a, b in zip(structures, back):
        assert b.info["energy"] == pytest.approx(a.info["energy"], rel=1e-12)
        np.testing.assert_allclose(b.arrays["forces"], a.arrays["forces"], atol=1e-12)
        np.testing.assert_allclose(b.info["stress"], a.info["stress"], atol=1e-12)


def test_reference_energies_recover_a_linear_model():
    model = tiny()
    structures = emt_structures(2, seed=0, element="Cu") + emt_structures(2, seed=1, element="Au")
    alloy = ase.build.bulk("Cu", "fcc", a=3.7, cubic=True)
    alloy.numbers[:2] = 79
    structures.append(alloy)
    for atoms in structures:
        counts = np.bincount(atoms.numbers, minlength=80)
        atoms.info["energy"] = -3.0 * counts[29] - 4.5 * counts[79]
        atoms.arrays["forces"] = np.zeros((len(atoms), 3))
    reference = fit_reference_energies(to_samples(model, structures))
    assert float(reference[29]) == pytest.approx(-3.0, abs=1e-9)
    assert float(reference[79]) == pytest.approx(-4.5, abs=1e-9)
    assert float(reference[1]) == 0.0


@pytest.mark.parametrize("kind", ["conservative", "direct"])
def test_training_predictions_equal_inference(kind):
    model = build_model(f"orb-v3-{kind}-inf-omat", seed=2, dtype=torch.float64, **TINY)
    atoms = emt_structures(1, seed=4)[0]
    slab = ase.build.fcc111("Cu", size=(2, 2, 3), vacuum=None, periodic=False)
    slab.pbc = (True, True, False)
    slab.rattle(0.05, rng=np.random.default_rng(0))
    slab.info["energy"] = 0.0
    slab.arrays["forces"] = np.zeros((len(slab), 3))
    batch = collate(to_samples(model, [atoms, slab], dtype=torch.float64))
    prediction = predict(model, batch, create_graph=False)
    reference = evaluate(model, atoms_to_batch([atoms, slab]))
    np.testing.assert_allclose(prediction.energy.detach(), reference["energy"], rtol=1e-12)
    np.testing.assert_allclose(prediction.forces.detach(), reference["forces"], atol=1e-10)
    np.testing.assert_allclose(prediction.stress.detach()[0], reference["stress"][0], atol=1e-10)
    for i, structure in enumerate((atoms, slab)):  # W - W^T is dE/dG of the matrix-exponential definition
        np.testing.assert_allclose(
            prediction.rotational_gradient[i].detach().numpy(), rotational_gradient(model, structure), atol=1e-10
        )


def test_confidence_bins_hard_clamp():
    edges = torch.linspace(0.0, 0.3, 51)
    bins = force_error_bins(torch.tensor([0.0, 0.0059, 0.0061, 0.2999, 0.3, 0.31]), edges)
    assert bins.tolist() == [0, 0, 1, 49, 49, IGNORE_BIN]


def test_losses_are_huber_of_normalised_targets():
    model = tiny()
    samples = to_samples(model, emt_structures(4, seed=2))
    fit_statistics(model, samples)
    batch = collate(samples)
    prediction = predict(model, batch)
    weights = LossWeights(energy=1.0, forces=0.0, stress=0.0, equigrad=0.0, confidence=0.0)
    terms = losses(model, batch, prediction, weights)
    sigma = float(model.heads.energy.normalizer.bn.running_var.sqrt())
    reference = model.heads.energy.reference(batch.atomic_numbers, batch.system_index, 4)
    error = ((prediction.energy - batch.energy) / batch.counts / sigma).detach().abs()
    expected = torch.where(error < 0.01, 0.5 * error**2, 0.01 * (error - 0.005)).mean()
    assert float(terms["energy"]) == pytest.approx(float(expected), rel=1e-5)
    assert float(reference.abs().sum()) > 0  # statistics were fitted
    assert set(terms) == {"energy", "forces", "stress", "total"}
    assert float(terms["forces"]) == 0.0


def train_tiny(equigrad: float, epochs: int = 20, seed: int = 0):
    model = tiny(seed=seed)
    samples = to_samples(model, emt_structures(12, seed=7) + emt_structures(6, seed=8, element="Ag"))
    fit_statistics(model, samples)
    # Energy weighted 10, not the recipe's 100: with 180 steps the tiny model's forces otherwise stay on the
    # plateau of a nearly flat initial energy (the demo run escapes it after a few hundred steps).
    config = TrainingConfig(epochs=epochs, max_batch_atoms=8, learning_rate=5e-3, seed=seed,
                            weights=LossWeights(energy=10.0, equigrad=equigrad))
    history = train(model, samples, config, progress=False)
    return model, history


def test_training_is_reproducible_and_learns(tmp_path, one_thread):
    first, history = train_tiny(LossWeights().equigrad)
    second, _ = train_tiny(LossWeights().equigrad)
    for (key, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        assert torch.equal(a, b), key
    assert history[-1]["forces"] < 0.5 * history[0]["forces"]
    data = emt_structures(12, seed=7) + emt_structures(6, seed=8, element="Ag")
    save_checkpoint(first, tmp_path / "tiny.ckpt", trained_elements(first, data), {"note": "test"})
    loaded = load_model(tmp_path / "tiny.ckpt", architecture=first.config, precision="float32-highest")
    assert json.loads((tmp_path / "tiny.json").read_text())["elements"] == ["Cu", "Ag"]
    assert loaded.training_elements.numbers == {29, 47}
    atoms = emt_structures(1, seed=11)[0]
    a = evaluate(first, atoms_to_batch([atoms], dtype=torch.float32))
    b = evaluate(loaded, atoms_to_batch([atoms], dtype=torch.float32))
    torch.testing.assert_close(a["forces"], b["forces"])
    assert (tmp_path / "tiny.json").is_file()


def test_equigrad_reduces_the_rotational_gradient(one_thread):
    """Same data, seed and schedule; only the equigrad weight differs. Held-out structures."""
    with_it, _ = train_tiny(equigrad=LossWeights().equigrad)
    without, _ = train_tiny(equigrad=0.0)
    held_out = emt_structures(6, seed=99) + emt_structures(3, seed=98, element="Ag")
    rot_with = validation_errors(with_it, to_samples(with_it, held_out))["rotational_gradient_rms"]
    rot_without = validation_errors(without, to_samples(without, held_out))["rotational_gradient_rms"]
    assert rot_without > 3.0 * rot_with, (rot_with, rot_without)
