"""Experiments: many runs at once. Presets name the paper's tables (:mod:`.presets`), a preset expands
into runs with names and dependencies (:mod:`.expand`), a sweep runs them resumably (:mod:`.sweep`,
:mod:`.launchers`), and studies train the runs behind one figure (:mod:`.studies`)."""
