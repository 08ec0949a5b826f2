"""Several devices: data-parallel steps over a mesh (:mod:`.parallel`) and several processes
joined into one run (:mod:`.distributed`)."""
