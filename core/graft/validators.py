"""attrs validators that report their problem at the field's YAML path: the public path of
``graft.spec.validators``, where they are described.

    units: int = attrs.field(validator=graft.validators.positive)
"""

from graft.spec.validators import (
    between,
    each,
    existing_file,
    existing_folder,
    failure_message,
    finite,
    folder_input,
    fraction,
    identifier,
    is_name,
    loading_model_input,
    loading_spec_in,
    model_input_shape,
    non_empty,
    non_negative,
    one_of,
    positive,
    relative_to_field,
    spec_folder,
    unless,
)

__all__ = [
    "between",
    "each",
    "existing_file",
    "existing_folder",
    "failure_message",
    "finite",
    "folder_input",
    "fraction",
    "identifier",
    "is_name",
    "loading_model_input",
    "loading_spec_in",
    "model_input_shape",
    "non_empty",
    "non_negative",
    "one_of",
    "positive",
    "relative_to_field",
    "spec_folder",
    "unless",
]
