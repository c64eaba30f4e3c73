"""The ``somanet`` command line: ``somanet train | evaluate | predict | recipes | summary | lr-find``.

The entry point is ``somanet.cli.main:main``; recipes and the model and dataset builders they name
are registered in ``somanet.cli.recipes``.
"""
from .main import main, build_parser, CLIError
from .recipes import register_recipe, register_model, register_dataset, get_recipe, recipe_names

__all__ = ["main", "build_parser", "CLIError", "register_recipe", "register_model", "register_dataset",
           "get_recipe", "recipe_names"]
