"""Names under which orb_md registers Orb-v3 models with openmm-ml.

Each released model ``orb-v3-...`` (and the bundled ``orb-md-demo-v1`` and ``orb-md-demo-bio-v1``) is registered as
``orb_md/<name>``: the namespace cannot
collide with openmm-ml's own ``orb-v3-conservative-inf-omat`` / ``orb-v3-conservative-omol``
(which run orb-models through a PythonForce), and the part after the slash is the model name
that :func:`orb_md.load_model` takes. The registry of model names is :mod:`orb_md.model.config`; this module
spells them out because openmm-ml imports it on every ``import openmmml``, where importing orb_md (torch) is too
slow or may fail. Tests check that the list equals the registry and ``[project.entry-points."openmmml.potentials"]``
in pyproject.toml.
"""

POTENTIAL_PREFIX = "orb_md/"

MODEL_NAMES: tuple[str, ...] = tuple(
    f"orb-v3-{kind}-{variant}"
    for variant in ("inf-omat", "20-omat", "inf-mpa", "20-mpa", "omol")
    for kind in ("direct", "conservative")
) + ("orb-md-demo-v1", "orb-md-demo-bio-v1")  # the bundled offline demo models (orb_md/weights)


def potential_name(model: str) -> str:
    """The openmm-ml name of an orb_md model name."""
    return POTENTIAL_PREFIX + model


def model_name(potential: str) -> str:
    """The orb_md model name behind an openmm-ml potential name; ValueError if not one of ours."""
    model = potential[len(POTENTIAL_PREFIX):] if potential.startswith(POTENTIAL_PREFIX) else ""
    if model not in MODEL_NAMES:
        raise ValueError(f"{potential!r} is not an orb_md potential; known: {', '.join(map(potential_name, MODEL_NAMES))}")
    return model
