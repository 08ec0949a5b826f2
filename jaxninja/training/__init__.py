"""One run and many, into folders: the loop (:mod:`.loop`), one run's folder (:mod:`.run`), many
runs in one program (:mod:`.stacked`) and their folders (:mod:`.many`), the plan of runs
(:mod:`.plan`), compile-ahead (:mod:`.warmup`), memory and progress, plots, and the use of a
finished run (:mod:`.inference`).

Named ``training``, not ``train``: ``jaxninja.train`` is the public function, and a subpackage of
that name would replace it as ``jaxninja``'s attribute once imported."""
