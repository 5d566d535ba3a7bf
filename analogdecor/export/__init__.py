"""Export of trained conductance maps (npz, HDF5, CSV, PNG) and import back into a network.

:func:`export_run` / :func:`export_network` write; :func:`read_export` reads an
export back as a :class:`ConductanceExport`; :func:`import_network` /
:func:`load_into` rebuild a network with the same outputs (exact with noise off).
"""

from __future__ import annotations

from analogdecor.export.api import build_export, export_network, export_run, import_network, load_into
from analogdecor.export.formats import FORMATS, READABLE_FORMATS, read_export, write_export
from analogdecor.export.records import FORMAT_NAME, FORMAT_VERSION, ConductanceExport, LayerRecord

__all__ = [
    "FORMATS",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "READABLE_FORMATS",
    "ConductanceExport",
    "LayerRecord",
    "build_export",
    "export_network",
    "export_run",
    "import_network",
    "load_into",
    "read_export",
    "write_export",
]
