"""Every gradient against its references: tapped intermediates (:mod:`.taps`), the comparison
and its diagnosis (:mod:`.compare`, :mod:`.diagnose`), the table for your model
(:mod:`.model_check`) and for the lecture (:mod:`.lecture_check`), and their plots
(:mod:`.plots`)."""
