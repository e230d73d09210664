from twisted.application.service import ServiceMaker

planet = ServiceMaker("planet", "planet.tap", "Feed aggregator daemon (Planet-compatible)", "planet")
