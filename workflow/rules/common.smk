# Settings shared by every rule: wildcard shapes, logs, the software environment.


wildcard_constraints:
    sdir=r"sub-[A-Za-z0-9]+(/ses-[A-Za-z0-9]+)?",
    run=r"sub-[A-Za-z0-9]+(_[a-z]+-[A-Za-z0-9]+)*",


LOGS = f"{OUT}/logs"
ENV = "../envs/neurofuse.yaml"
