/**
 * The element tree the scanner builds and everything else reads. Its own module so that the
 * scanner (which builds it) and xml.ts (which reads and writes it) do not import each other.
 */
export interface XmlLimits {
  maxDepth: number;
  maxAttributes: number;
  maxNameLength: number;
  maxElements: number;
}

export const DEFAULT_XML_LIMITS: XmlLimits = {
  maxDepth: 64,
  maxAttributes: 64,
  maxNameLength: 256,
  maxElements: 200_000,
};

export interface XmlAttr {
  uri: string;
  local: string;
  prefix: string;
  value: string;
}

export interface XmlElement {
  uri: string;
  local: string;
  prefix: string;
  attrs: XmlAttr[];
  /** Namespace declarations made on this element, prefix ('' for default) → uri. */
  nsDecls: Record<string, string> | null;
  children: XmlNode[];
  parent: XmlElement | null;
}

export type XmlNode = XmlElement | string;
