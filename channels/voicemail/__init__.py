"""The hotline's voicemail: transcripts from a spool directory or a signed webhook become tickets."""
