"""Hooks of the teacher and student flows. They return outcomes and data; the flows speak."""
