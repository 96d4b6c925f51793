"""The school's rules as numbers: the policy file, the business calendar, the stage clocks and the texts'
templates.
Below everything that decides: nothing here knows a ticket's story."""
