"""Downstream evaluation of location encoders: tasks, splits, feature providers, probes and reports.

- :mod:`~lamina.geo.eval.tasks`: one loader per task, and the task registry.
- :mod:`~lamina.geo.eval.baselines`, :mod:`~lamina.geo.eval.geoclip`: the representations compared.
- :mod:`~lamina.geo.eval.evaluate`: tasks x methods x splits x seeds; :mod:`~lamina.geo.eval.report`: its report.
- :mod:`~lamina.geo.eval.probing`: fit a probe for a task, save it, apply it to new points.
"""
