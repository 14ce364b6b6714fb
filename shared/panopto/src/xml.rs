//! A small element tree read with quick-xml's namespace-aware reader: enough to walk a SOAP
//! answer by (namespace, local name) without caring which prefixes the server chose.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::Event;
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

/// Deeper than any SOAP answer Panopto gives; guards against hostile nesting.
const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Element {
    pub namespace: Option<String>,
    pub name: String,
    /// `xsi:nil="true"`: present but null.
    pub nil: bool,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The document's root element.
    pub fn parse(xml: &[u8]) -> Result<Element, String> {
        let text = std::str::from_utf8(xml).map_err(|_| "the XML is not UTF-8".to_string())?;
        let mut reader = NsReader::from_str(text);
        let mut stack: Vec<Element> = Vec::new();
        loop {
            let (ns, event) = reader
                .read_resolved_event()
                .map_err(|e| format!("malformed XML: {e}"))?;
            let namespace = match ns {
                ResolveResult::Bound(ns) => Some(String::from_utf8_lossy(ns.as_ref()).into_owned()),
                _ => None,
            };
            match event {
                Event::Start(start) | Event::Empty(start) if stack.len() >= MAX_DEPTH => {
                    let _ = start;
                    return Err("the XML is nested too deeply".into());
                }
                Event::Start(start) => stack.push(open(namespace, &start)?),
                Event::Empty(start) => {
                    let element = open(namespace, &start)?;
                    if let Some(done) = close(&mut stack, element) {
                        return Ok(done);
                    }
                }
                Event::End(_) => {
                    let element = stack.pop().ok_or("unbalanced XML")?;
                    if let Some(done) = close(&mut stack, element) {
                        return Ok(done);
                    }
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        let content = t.xml10_content().map_err(|e| format!("bad text: {e}"))?;
                        top.text.push_str(&content);
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        let content = t.decode().map_err(|e| format!("bad CDATA: {e}"))?;
                        top.text.push_str(&content);
                    }
                }
                Event::GeneralRef(r) => {
                    if let Some(top) = stack.last_mut() {
                        if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
                            top.text.push(c);
                        } else {
                            let name = r.decode().map_err(|e| e.to_string())?;
                            let value = resolve_predefined_entity(&name)
                                .ok_or_else(|| format!("unknown entity &{name};"))?;
                            top.text.push_str(value);
                        }
                    }
                }
                Event::DocType(_) => return Err("a DOCTYPE is not accepted".into()),
                Event::Eof => return Err("the XML ended before its root element closed".into()),
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) => {}
            }
        }
    }

    pub fn is(&self, namespace: &str, name: &str) -> bool {
        self.name == name && self.namespace.as_deref() == Some(namespace)
    }

    /// The first child with this local name.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The child's text, `None` when absent, nil or blank.
    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .filter(|c| !c.nil)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }
}

fn open(
    namespace: Option<String>,
    start: &quick_xml::events::BytesStart<'_>,
) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
    let mut nil = false;
    for attr in start.attributes() {
        let attr = attr.map_err(|e| format!("bad attribute: {e}"))?;
        if attr.key.local_name().as_ref() == b"nil" {
            nil = attr.value.as_ref() == b"true" || attr.value.as_ref() == b"1";
        }
    }
    Ok(Element {
        namespace,
        name,
        nil,
        ..Element::default()
    })
}

/// Attaches a finished element to its parent; the root when there is none.
fn close(stack: &mut [Element], element: Element) -> Option<Element> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(element);
            None
        }
        None => Some(element),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_namespaces_nil_entities_and_cdata() {
        let xml = br#"<?xml version="1.0"?>
            <s:Envelope xmlns:s="urn:env"><s:Body>
              <R xmlns="urn:t" xmlns:i="http://www.w3.org/2001/XMLSchema-instance">
                <a:Name xmlns:a="urn:a">Tom &amp; Jerry&#33; <![CDATA[<raw>]]></a:Name>
                <a:Description xmlns:a="urn:a" i:nil="true"/>
              </R></s:Body></s:Envelope>"#;
        let root = Element::parse(xml).unwrap();
        assert!(root.is("urn:env", "Envelope"));
        let r = root.child("Body").unwrap().child("R").unwrap();
        assert_eq!(r.namespace.as_deref(), Some("urn:t"));
        assert_eq!(r.child_text("Name"), Some("Tom & Jerry! <raw>"));
        assert!(r.child("Description").unwrap().nil);
        assert_eq!(r.child_text("Description"), None);
    }

    #[test]
    fn refuses_broken_or_hostile_documents() {
        assert!(Element::parse(b"<a><b></a>").is_err());
        assert!(Element::parse(b"<a>").is_err());
        assert!(Element::parse(b"<!DOCTYPE x [<!ENTITY e 'x'>]><a>&e;</a>").is_err());
        let deep = "<a>".repeat(100) + &"</a>".repeat(100);
        assert!(Element::parse(deep.as_bytes()).is_err());
        assert!(Element::parse(b"<a>&bogus;</a>").is_err());
    }
}
