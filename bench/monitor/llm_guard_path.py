"""Finds the installed llm_guard package folder without importing it."""
import importlib.util
import os

spec = importlib.util.find_spec("llm_guard")
ROOT = os.path.dirname(spec.origin)
