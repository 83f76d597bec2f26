"""Tables and figures, read from the records on disk: jobs of an experiment, gathering, rendering, column glossary."""
