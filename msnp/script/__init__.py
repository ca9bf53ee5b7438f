"""
Conversation transcripts run against a live MSN server: the file format
(L{msnp.script.transcript}), the engine that plays one
(L{msnp.script.engine}) and the C{msnp-script} command
(L{msnp.script.main}).  The format is described in
protocol-notes/transcripts.md.
"""
