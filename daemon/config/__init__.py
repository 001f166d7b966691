"""The daemon's configuration: pydantic models (``model``, ``assets``, ``types``), loading a YAML
file with ``${VAR}`` references and one-line errors (``load``, ``yaml_reader``), and the secrets a
config holds (``secrets``)."""
