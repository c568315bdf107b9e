"""``python -m hpctrack`` runs the command line."""

from .cli import run

run()
