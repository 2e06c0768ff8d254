/**
 * The zlib preset dictionary of SPDY/3 header compression (draft-mbelshe-
 * httpbis-spdy-00, section 2.6.10.1). Both directions of a SPDY/3 connection
 * prime their deflate/inflate contexts with it, so it must match the peer
 * byte for byte: zlib puts the dictionary's Adler-32 in the stream header
 * and the other side refuses to inflate when its own copy differs (Go's
 * spdystream, which kubectl, the kubelet and containerd use, reports
 * "invalid dictionary"; Node's inflate fails with "Bad dictionary").
 *
 * The constant is 1423 bytes. The draft prints it as a hex table; it is
 * spelled out here by its structure instead, which is easier to review: a
 * run of SPDY/3-style length-prefixed strings (32-bit big-endian length,
 * then the bytes, exactly as names and values appear in a name/value block)
 * followed by one plain run of text with no prefixes. Built once at load.
 */

/** Strings that appear with a 4-byte big-endian length in front of each, in this order. */
const PREFIXED: readonly string[] = [
  'options', 'head', 'post', 'put', 'delete', 'trace',
  'accept', 'accept-charset', 'accept-encoding', 'accept-language', 'accept-ranges',
  'age', 'allow', 'authorization', 'cache-control', 'connection',
  'content-base', 'content-encoding', 'content-language', 'content-length',
  'content-location', 'content-md5', 'content-range', 'content-type',
  'date', 'etag', 'expect', 'expires', 'from', 'host',
  'if-match', 'if-modified-since', 'if-none-match', 'if-range', 'if-unmodified-since',
  'last-modified', 'location', 'max-forwards', 'pragma',
  'proxy-authenticate', 'proxy-authorization', 'range', 'referer', 'retry-after',
  'server', 'te', 'trailer', 'transfer-encoding', 'upgrade', 'user-agent',
  'vary', 'via', 'warning', 'www-authenticate',
  'method', 'get', 'status', '200 OK', 'version', 'HTTP/1.1', 'url',
  'public', 'set-cookie', 'keep-alive', 'origin',
];

/**
 * The unprefixed tail, verbatim (pure ASCII). The pieces are only split for
 * line length; there are no separators between them beyond those written.
 */
const TAIL: string =
  '100101201202205206300302303304305306307' +
  '402405406407408409410411412413414415416417' +
  '502504505' +
  '203 Non-Authoritative Information' +
  '204 No Content' +
  '301 Moved Permanently' +
  '400 Bad Request' +
  '401 Unauthorized' +
  '403 Forbidden' +
  '404 Not Found' +
  '500 Internal Server Error' +
  '501 Not Implemented' +
  '503 Service Unavailable' +
  'Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 ' +
  'Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT' +
  'chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,' +
  'text/plain,text/javascript,' +
  'publicprivatemax-age=gzip,deflate,sdch' +
  'charset=utf-8charset=iso-8859-1,utf-,*,enq=0.';

function build(): Buffer {
  const parts: Buffer[] = [];
  for (const s of PREFIXED) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(Buffer.byteLength(s, 'latin1'));
    parts.push(len, Buffer.from(s, 'latin1'));
  }
  parts.push(Buffer.from(TAIL, 'latin1'));
  return Buffer.concat(parts);
}

/** The SPDY/3 header-compression dictionary (1423 bytes). Treat as read-only. */
export const SPDY3_DICTIONARY: Buffer = build();
