from twisted.application.service import ServiceMaker

msnp = ServiceMaker("msnp", "msnp.tap", "An MSN Messenger service (MSNP2-MSNP7).", "msnp")
