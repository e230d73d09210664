from twisted.application.service import ServiceMaker

planet = ServiceMaker("planet", "planet.tap", "Planet-compatible feed aggregator daemon", "planet")
