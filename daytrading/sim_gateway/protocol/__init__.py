"""The TWS API wire protocol of the sim-gateway: framing (:mod:`.wire`), server versions and their
gates (:mod:`.versions`), typed request decoders (:mod:`.requests`) and message builders
(:mod:`.messages`). The protocol notes the code relies on: ``docs/tws-protocol.md``."""
