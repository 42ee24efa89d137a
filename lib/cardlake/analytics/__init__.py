"""The analysts' layer: gold tables built after the models, from gold and the models' outputs.

One module per table family (``rfm``, ``service``, ``debt``, ``segments``, ``model_kpis``), each
a set of DataFrame transforms; ``job.run`` is the pipeline stage that reads, chains and writes.
"""
