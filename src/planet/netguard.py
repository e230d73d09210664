"""``allow_private_networks = false``: fetch nothing from loopback, private or local addresses.

The check sits where connections are made. :class:`GuardedEndpointFactory` gives the Agent
endpoints whose names (IP literals included) resolve through a :class:`GuardedResolver`, which
passes on only the addresses the policy allows. So the addresses checked are exactly the ones
connected to: every redirect hop is checked, and so is every new DNS answer (rebinding), with
no second lookup between the check and the connection. A name left with no address fails the
fetch with :class:`AddressRefusedError`, whose text is the feed's readable reason.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from attrs import define, field, frozen
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.internet.error import DNSLookupError
from twisted.internet.interfaces import (
    IAddress,
    IConnector,
    IDelayedCall,
    IHostnameResolver,
    IHostResolution,
    IListeningPort,
    IProtocol,
    IProtocolFactory,
    IReactorPluggableNameResolver,
    IReactorTCP,
    IReactorTime,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.python.failure import Failure
from twisted.web.client import URI, BrowserLikePolicyForHTTPS
from twisted.web.error import SchemeNotSupported
from twisted.web.iweb import IAgentEndpointFactory, IPolicyForHTTPS
from zope.interface import implementer

__all__ = [
    "AddressPolicy",
    "AddressRefusedError",
    "GuardedEndpointFactory",
    "GuardedResolver",
    "non_public_kind",
]

#: The config key, named in every refusal so the operator knows what to change.
CONFIG_KEY = "allow_private_networks"

#: Given an IP address, why not to connect to it ("a loopback address"), or None to allow it.
AddressPolicy = Callable[[str], str | None]

_KINDS = (
    ("is_unspecified", "an unspecified address"),
    ("is_loopback", "a loopback address"),
    ("is_link_local", "a link-local address"),
    ("is_multicast", "a multicast address"),
    ("is_reserved", "a reserved address"),
    ("is_private", "a private address"),
)
# DNS64 synthesizes these for IPv4-only hosts: the embedded IPv4 address is what is reached.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def non_public_kind(address: str) -> str | None:
    """What kind of non-public address ``address`` is ("a loopback address"); None if public.

    An IPv6 address that carries an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the
    IPv4 address, which is where the packets end up.
    """
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "not an IP address"
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip in _NAT64:
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return non_public_kind(str(embedded))
        if ip.is_site_local:
            return "a site-local address"
    # Most specific first: 127.0.0.1 is private too, but "loopback" says more.
    for flag, kind in _KINDS:
        if getattr(ip, flag):
            return kind
    if not ip.is_global:
        # 100.64.0.0/10 (carrier-grade NAT) and the like: neither private nor public.
        return "a non-public address"
    return None


class AddressRefusedError(Exception):
    """Every address of a host is one the policy refuses; str() is the feed's reason."""

    def __init__(self, host: str, address: str, kind: str) -> None:
        super().__init__(host, address, kind)
        self.host = host
        self.address = address
        self.kind = kind

    def __str__(self) -> str:
        if self.host == self.address:
            return f"refused: {self.address} is {self.kind} ({CONFIG_KEY} = false)"
        return (
            f"refused: {self.host} resolves to {self.address}, {self.kind} ({CONFIG_KEY} = false)"
        )


@implementer(IHostnameResolver)
@define
class GuardedResolver:
    """Passes on the addresses ``policy`` allows; the others go to ``refused`` with why."""

    _resolver: IHostnameResolver
    _policy: AddressPolicy = non_public_kind
    #: (address, kind) of each address not passed on, in the order resolved.
    refused: list[tuple[str, str]] = field(factory=list)

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,  # noqa: N803 (Twisted's interface)
        hostName: str,  # noqa: N803
        portNumber: int = 0,  # noqa: N803
        addressTypes: Sequence[type[IAddress]] | None = None,  # noqa: N803
        transportSemantics: str = "TCP",  # noqa: N803
    ) -> IHostResolution:
        return self._resolver.resolveHostName(
            _Filter(resolutionReceiver, self._policy, self.refused),
            hostName,
            portNumber,
            addressTypes,
            transportSemantics,
        )


@implementer(IResolutionReceiver)
@frozen
class _Filter:
    _receiver: IResolutionReceiver
    _policy: AddressPolicy
    _refused: list[tuple[str, str]]

    def resolutionBegan(self, resolution: IHostResolution) -> None:
        self._receiver.resolutionBegan(resolution)

    def addressResolved(self, address: IAddress) -> None:
        if isinstance(address, (IPv4Address, IPv6Address)):
            kind = self._policy(address.host)
            host = address.host
        else:
            kind, host = "not an IP address", str(address)
        if kind is None:
            self._receiver.addressResolved(address)
        else:
            self._refused.append((host, kind))

    def resolutionComplete(self) -> None:
        self._receiver.resolutionComplete()


@implementer(IReactorPluggableNameResolver, IReactorTCP, IReactorTime)
@frozen
class _GuardedReactor:
    """The reactor as one HostnameEndpoint sees it: names resolve through ``nameResolver``."""

    _reactor: Any
    nameResolver: IHostnameResolver

    def installNameResolver(self, resolver: IHostnameResolver) -> IHostnameResolver:
        # Part of the interface HostnameEndpoint checks for; swapping the resolver would
        # bypass the guard, so it is refused rather than done.
        raise TypeError("a guarded reactor's name resolver cannot be replaced")

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: ClientFactory[Any],
        timeout: float = 30.0,
        bindAddress: tuple[str, int] | None = None,  # noqa: N803 (Twisted's interface)
    ) -> IConnector:
        connector: IConnector = self._reactor.connectTCP(host, port, factory, timeout, bindAddress)
        return connector

    def listenTCP(
        self, port: int, factory: ServerFactory, backlog: int = 50, interface: str = ""
    ) -> IListeningPort:
        listening: IListeningPort = self._reactor.listenTCP(port, factory, backlog, interface)
        return listening

    def seconds(self) -> float:
        return float(self._reactor.seconds())

    def callLater(
        self, delay: float, callable: Callable[..., Any], *args: object, **kwargs: object
    ) -> IDelayedCall:
        call: IDelayedCall = self._reactor.callLater(delay, callable, *args, **kwargs)
        return call

    def getDelayedCalls(self) -> Sequence[IDelayedCall]:
        calls: Sequence[IDelayedCall] = self._reactor.getDelayedCalls()
        return calls


@implementer(IStreamClientEndpoint)
@frozen
class _GuardedEndpoint:
    """A HostnameEndpoint whose every connection resolves through a fresh GuardedResolver."""

    _reactor: Any
    _host: str
    _port: int
    _timeout: float
    _policy: AddressPolicy

    def connect(self, factory: IProtocolFactory) -> Deferred[IProtocol]:
        resolver = GuardedResolver(self._reactor.nameResolver, self._policy)
        endpoint = HostnameEndpoint(
            _GuardedReactor(self._reactor, resolver), self._host, self._port, self._timeout
        )

        def refused(failure: Failure) -> Failure:
            # HostnameEndpoint says "no results for hostname lookup" when every address was
            # dropped; say why instead.
            if failure.check(DNSLookupError) and resolver.refused:
                address, kind = resolver.refused[0]
                raise AddressRefusedError(self._host, address, kind)
            return failure

        return endpoint.connect(factory).addErrback(refused)


@implementer(IAgentEndpointFactory)
@frozen
class GuardedEndpointFactory:
    """Agent endpoints (http and https only) that connect only where ``policy`` allows
    (None: anywhere, as the Agent's own endpoints do)."""

    _reactor: Any
    _policy: AddressPolicy | None = non_public_kind
    _connect_timeout: float = 10.0
    _tls: IPolicyForHTTPS = field(factory=BrowserLikePolicyForHTTPS)

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise SchemeNotSupported(f"Unsupported scheme: {uri.scheme!r}")
        try:
            host = uri.host.decode("ascii")
        except UnicodeDecodeError:
            raise ValueError(f"non-ASCII host in {uri.toBytes()!r}") from None
        # URI keeps the brackets of an IPv6 literal; the resolver wants the bare address.
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        endpoint: IStreamClientEndpoint
        if self._policy is None:
            endpoint = HostnameEndpoint(
                self._reactor, host, uri.port, timeout=self._connect_timeout
            )
        else:
            endpoint = _GuardedEndpoint(
                self._reactor, host, uri.port, self._connect_timeout, self._policy
            )
        if uri.scheme == b"https":
            return wrapClientTLS(self._tls.creatorForNetloc(uri.host, uri.port), endpoint)
        return endpoint
