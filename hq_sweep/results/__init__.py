"""Reading a sweep back: status counts, the best trial, exports (`summary`) and the live
monitor (`monitor`: a pure render of a snapshot plus a polling loop), and what the sweep cost
(`cost`: totals, one line, export columns).

Read-only: it never changes a sweep. May import the shared transport (`queue`), `messages` and
`spec`; not the controller or the worker.
"""
