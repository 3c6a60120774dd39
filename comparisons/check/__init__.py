"""One check, end to end: a case is drawn (``cases``), every backend runs it (``backends``),
the candidate's answer is read (``outputs``) and compared with each reference (``compare``)
against a tolerance argued from dtype and conditioning (``tolerances``, ``tf32``); a
disagreement is located, shrunk, diagnosed (``diagnosis``) and saved (``reproducer``).
``checker`` runs all of that for the contract's model, ``cells`` for any recurrent cell,
``conventions`` for derivations written as people write them."""
