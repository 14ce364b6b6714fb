//! A small element tree read with quick-xml's namespace-aware reader, so SOAP requests are
//! read by (namespace, local name) whatever prefixes the client chose.

use quick_xml::escape::resolve_predefined_entity;
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;

const MAX_DEPTH: usize = 64;

#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Element {
    pub namespace: Option<String>,
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
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
                Event::Start(_) | Event::Empty(_) if stack.len() >= MAX_DEPTH => {
                    return Err("the XML is nested too deeply".into());
                }
                Event::Start(start) => stack.push(open(namespace, &start)),
                Event::Empty(start) => {
                    if let Some(root) = close(&mut stack, open(namespace, &start)) {
                        return Ok(root);
                    }
                }
                Event::End(_) => {
                    let element = stack.pop().ok_or("unbalanced XML")?;
                    if let Some(root) = close(&mut stack, element) {
                        return Ok(root);
                    }
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text
                            .push_str(&t.xml10_content().map_err(|e| e.to_string())?);
                    }
                }
                Event::CData(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.decode().map_err(|e| e.to_string())?);
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

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    pub fn child_text(&self, name: &str) -> Option<&str> {
        self.child(name)
            .map(|c| c.text.trim())
            .filter(|t| !t.is_empty())
    }
}

fn open(namespace: Option<String>, start: &BytesStart<'_>) -> Element {
    Element {
        namespace,
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        ..Element::default()
    }
}

fn close(stack: &mut [Element], element: Element) -> Option<Element> {
    match stack.last_mut() {
        Some(parent) => {
            parent.children.push(element);
            None
        }
        None => Some(element),
    }
}
