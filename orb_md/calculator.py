"""ASE calculator: a drop-in for orb-models' ORBCalculator backed by orb_md."""

from __future__ import annotations

import ase
import torch
from ase.calculators.calculator import Calculator, all_changes

from orb_md.batch import atoms_to_batch, evaluate
from orb_md.charge_spin import require_charge_spin
from orb_md.checkpoints import load_model
from orb_md.devices import resolve_device
from orb_md.model.orb import OrbModel


class OrbCalculator(Calculator):
    """Energy, free energy, forces, stress and per-atom confidence of an Orb-v3 model.

    ``model`` is an :class:`OrbModel` or a released model name / checkpoint path (loaded with
    ``precision``). ``device`` moves the model there; None keeps an OrbModel where it is and loads a name
    on the CPU. For the OMol models, total charge and spin multiplicity are read from
    ``atoms.info['charge']`` and ``atoms.info['spin']``, falling back to ``charge``/``spin``.
    ``confidence`` is the (N, 50) probability of each per-atom force-error bin.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "confidence"]

    def __init__(
        self,
        model: OrbModel | str,
        *,
        precision: str = "float32-high",
        device: str | torch.device | None = None,
        charge: float | None = None,
        spin: float | None = None,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if isinstance(model, OrbModel):
            self.model = model if device is None else model.to(resolve_device(device))
        else:
            self.model = load_model(model, precision=precision, device=resolve_device(device or "cpu"))
        self.charge = charge
        self.spin = spin

    def calculate(
        self,
        atoms: ase.Atoms | None = None,
        properties: list[str] | None = None,
        system_changes: list[str] = all_changes,
    ) -> None:
        super().calculate(atoms, properties, system_changes)
        parameter = next(self.model.parameters())
        if self.model.config.charge_spin:
            info = self.atoms.info
            require_charge_spin(self.model.config, info.get("charge", self.charge), info.get("spin", self.spin),
                                self._how_to_set)
        batch = atoms_to_batch(
            [self.atoms], dtype=parameter.dtype, device=parameter.device, charge=self.charge, spin=self.spin
        )
        periodic = bool(self.atoms.pbc.any())
        out = evaluate(self.model, batch, forces=True, stress=periodic)
        energy = float(out["energy"][0])
        self.results = {
            "energy": energy,
            "free_energy": energy,
            "forces": out["forces"].cpu().double().numpy(),
            "confidence": out["confidence"].cpu().double().numpy(),
        }
        if periodic and "stress" in out:
            self.results["stress"] = out["stress"][0].cpu().double().numpy()

    @staticmethod
    def _how_to_set(missing: list[str]) -> str:
        return " and ".join(f"set atoms.info[{key!r}] (or OrbCalculator({key}=...))" for key in missing)
