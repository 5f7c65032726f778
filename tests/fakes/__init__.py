"""Protocol-level fakes of the services Parley talks to: they speak the wire, not our code."""
