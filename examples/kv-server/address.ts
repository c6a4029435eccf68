// "host:port" as the command line writes it, and the URLs built from it.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

/** Parses "host:port" ("[::1]:8080" for IPv6). @throws TypeError naming what is wrong. */
export function parseHostPort(text: string): HostPort {
  const colon = text.lastIndexOf(":");
  let host = colon > 0 ? text.slice(0, colon) : "";
  const portText = text.slice(colon + 1);
  if (host.startsWith("[") && host.endsWith("]")) host = host.slice(1, -1);
  else if (host.includes(":")) throw new TypeError(`write an IPv6 host in brackets, "[::1]:8080"; got ${JSON.stringify(text)}`);
  if (host === "" || !/^[0-9]{1,5}$/.test(portText)) throw new TypeError(`expected HOST:PORT, got ${JSON.stringify(text)}`);
  const port = Number(portText);
  if (port < 1 || port > 65535) throw new TypeError(`port must be 1 to 65535, got ${port}`);
  return { host, port };
}

export function formatHostPort(a: HostPort): string {
  return a.host.includes(":") ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`;
}

/** The base URL (no trailing slash) of an HTTP API at `a`. */
export function httpBaseUrl(a: HostPort): string {
  return `http://${formatHostPort(a)}`;
}
