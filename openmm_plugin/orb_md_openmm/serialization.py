"""Read back OpenMM XML that holds TorchForces, where ``openmm.XmlSerializer.deserialize`` crashes.

With OpenMM >= 8.6 and the openmm-torch 1.5 wheels, ``XmlSerializer.deserialize`` of any
TorchForce (alone or inside a System) kills the process with SIGSEGV; serialising works. OpenMM
8.6 changed ``SerializationNode::getStringProperty`` to return ``std::string`` by value instead of
by reference (openmm#5249); the openmm-torch 1.5 plugin, compiled against the older header, still
calls it with the by-reference convention (the node and the name in the wrong registers), so the
first string property it reads crashes. Every TorchForce XML version reads a string property, so
no way of saving the module avoids it.

:func:`deserialize` rebuilds each TorchForce element in Python from the fields openmm-torch's
proxy writes (hex-encoded TorchScript archive, force group, periodicity, forces output, global
parameters, parameter derivatives, properties) and hands every other element to OpenMM, keeping
the order of the forces. Importing this module (through :mod:`orb_md_openmm.force`) registers the
TorchScript classes orb_md's modules hold (vesin-torch's neighbour list), so a fresh process can load
them; a process calling ``openmm.XmlSerializer.deserialize`` itself (with an openmm-torch that does
not crash) must ``import orb_md_openmm.force`` first, or torch reports ``Unknown type name
'__torch__.torch.classes.vesin._NeighborList'``.
"""

from __future__ import annotations

import io
from xml.etree import ElementTree

import openmm
import torch

from orb_md.errors import InputError
from orb_md_openmm.force import TorchForce  # (importing force.py also loads openmm-torch's kernels and vesin's class)

__all__ = ["deserialize"]

TORCH_FORCE_XML_VERSION = 4  # the newest TorchForce XML version openmm-torch 1.5 writes


def deserialize(xml: str) -> openmm.System | openmm.Force:
    """The System or Force in ``xml`` (as ``openmm.XmlSerializer.serialize`` wrote it), TorchForces included."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as error:
        raise InputError(f"not OpenMM XML: {error}") from None
    if root.tag == "Force":
        return _force(root)
    if root.tag != "System":
        raise InputError(f"expected an OpenMM <System> or <Force> XML document, got <{root.tag}>")
    forces = root.find("Forces")
    elements = list(forces) if forces is not None else []
    for element in elements:
        forces.remove(element)
    system = openmm.XmlSerializer.deserialize(ElementTree.tostring(root, encoding="unicode"))
    for element in elements:
        system.addForce(_force(element))
    return system


def _force(element: ElementTree.Element) -> openmm.Force:
    if element.get("type") != "TorchForce":
        return openmm.XmlSerializer.deserialize(ElementTree.tostring(element, encoding="unicode"))
    return _torch_force(element)


def _torch_force(element: ElementTree.Element) -> TorchForce:
    """A TorchForce from its XML element (versions 1-4 of openmm-torch's TorchForceProxy)."""
    version = int(element.get("version", "0"))
    if not 1 <= version <= TORCH_FORCE_XML_VERSION:
        raise InputError(f"TorchForce XML version {version}; this reader knows versions 1 to {TORCH_FORCE_XML_VERSION}")
    properties = {p.get("name"): p.get("value") for p in element.iterfind("Properties/Property")}
    if version == 1:
        force = TorchForce(element.get("file"), properties)
    else:
        archive = bytes.fromhex(element.get("encodedFileContents", ""))
        force = TorchForce(torch.jit.load(io.BytesIO(archive)), properties)
    force.setForceGroup(int(element.get("forceGroup", "0")))
    force.setUsesPeriodicBoundaryConditions(element.get("usesPeriodic", "0") == "1")
    force.setOutputsForces(element.get("outputsForces", "0") == "1")
    for parameter in element.iterfind("GlobalParameters/Parameter"):
        force.addGlobalParameter(parameter.get("name"), float(parameter.get("default")))
    for parameter in element.iterfind("ParameterDerivatives/Parameter"):
        force.addEnergyParameterDerivative(parameter.get("name"))
    return force
