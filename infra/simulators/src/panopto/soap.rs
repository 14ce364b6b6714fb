//! SOAP 1.1 endpoints: `SessionManagement.svc` (`GetSessionsById`) and
//! `RemoteRecorderManagement.svc` (`GetRemoteRecordersById`). Requests are read and answers
//! written with quick-xml; bad credentials, an unknown action or an unreadable message get a
//! `Fault` (HTTP 500, as WCF answers them). Unknown ids are left out of the answer.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::server::{App, lock};
use super::world::{Session, World};
use super::xml::Element;

pub(crate) const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const TEMPURI: &str = "http://tempuri.org/";
const V40: &str = "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40";
const ARRAYS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const DISPATCHER: &str =
    "http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Sessions,
    Recorders,
}

impl Service {
    fn operation(self) -> &'static str {
        match self {
            Service::Sessions => "GetSessionsById",
            Service::Recorders => "GetRemoteRecordersById",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Service::Sessions => "http://tempuri.org/ISessionManagement/GetSessionsById",
            Service::Recorders => {
                "http://tempuri.org/IRemoteRecorderManagement/GetRemoteRecordersById"
            }
        }
    }

    fn ids_element(self) -> &'static str {
        match self {
            Service::Sessions => "sessionIds",
            Service::Recorders => "remoteRecorderIds",
        }
    }
}

/// The `SOAPAction` header without its quotes (`""` when absent).
pub(crate) fn action(headers: &HeaderMap) -> String {
    headers
        .get("soapaction")
        .and_then(|v| v.to_str().ok())
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_default()
}

pub(crate) async fn session_management(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&app, Service::Sessions, &headers, &body)
}

pub(crate) async fn remote_recorder_management(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    handle(&app, Service::Recorders, &headers, &body)
}

fn handle(app: &App, service: Service, headers: &HeaderMap, body: &[u8]) -> Response {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !content_type.to_ascii_lowercase().starts_with("text/xml") {
        return (
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            format!(
                "Cannot process the message because the content type '{content_type}' was not \
                 the expected type 'text/xml; charset=utf-8'."
            ),
        )
            .into_response();
    }
    let action = action(headers);
    if action != service.action() {
        return fault(
            app,
            ("a", DISPATCHER, "ActionNotSupported"),
            &format!(
                "The message with Action '{action}' cannot be processed at the receiver, due to a \
                 ContractFilter mismatch at the EndpointDispatcher."
            ),
        );
    }
    let request = match read_request(body, service) {
        Ok(request) => request,
        Err(message) => return fault(app, ("s", SOAP_ENV, "Client"), &message),
    };
    let known = app
        .config
        .soap_users
        .iter()
        .any(|(user, password)| *user == request.user_key && *password == request.password);
    if !known {
        return fault(
            app,
            ("s", SOAP_ENV, "Client"),
            "Authentication failed: the user key or password is not valid",
        );
    }
    if let Some(throttled) = app.over_budget(&format!("soap:{}", request.user_key)) {
        return throttled;
    }
    let xml = {
        let world = app.world();
        match service {
            Service::Sessions => sessions_response(&world, &request.ids, &app.base_url),
            Service::Recorders => recorders_response(&world, &request.ids),
        }
    };
    xml_response(StatusCode::OK, xml)
}

struct SoapRequest {
    user_key: String,
    password: String,
    ids: Vec<String>,
}

fn read_request(body: &[u8], service: Service) -> Result<SoapRequest, String> {
    let root = Element::parse(body).map_err(|e| format!("The message could not be read: {e}"))?;
    if !root.is(SOAP_ENV, "Envelope") {
        return Err("The message is not a SOAP 1.1 envelope".into());
    }
    let operation = root
        .children
        .iter()
        .find(|c| c.is(SOAP_ENV, "Body"))
        .and_then(|b| b.children.first())
        .filter(|op| op.is(TEMPURI, service.operation()))
        .ok_or_else(|| format!("The Body does not hold a {} request", service.operation()))?;
    let auth = operation
        .child("auth")
        .ok_or("The request carries no AuthenticationInfo")?;
    if auth.child_text("AuthCode").is_some() && auth.child_text("Password").is_none() {
        return Err("AuthCode authentication is not supported by this site".into());
    }
    let ids = operation
        .child(service.ids_element())
        .map(|ids| {
            ids.children
                .iter()
                .filter(|g| g.is(ARRAYS, "guid"))
                .map(|g| g.text.trim().to_string())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    if let Some(bad) = ids.iter().find(|id| uuid::Uuid::parse_str(id).is_err()) {
        return Err(format!("'{bad}' is not a valid Guid"));
    }
    Ok(SoapRequest {
        user_key: auth.child_text("UserKey").unwrap_or_default().to_string(),
        password: auth.child_text("Password").unwrap_or_default().to_string(),
        ids,
    })
}

fn xml_response(status: StatusCode, xml: Vec<u8>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/xml; charset=utf-8")],
        xml,
    )
        .into_response()
}

fn fault(app: &App, (prefix, namespace, code): (&str, &str, &str), message: &str) -> Response {
    lock(&app.stats).soap_faults += 1;
    let mut w = Writer::new(Vec::new());
    // Writing into a Vec cannot fail.
    let _ = (|| -> std::io::Result<()> {
        envelope_start(&mut w)?;
        w.write_event(Event::Start(BytesStart::new("s:Fault")))?;
        let xmlns = format!("xmlns:{prefix}");
        let mut faultcode = BytesStart::new("faultcode");
        if prefix != "s" {
            faultcode.push_attribute((xmlns.as_str(), namespace));
        }
        w.write_event(Event::Start(faultcode))?;
        w.write_event(Event::Text(BytesText::new(&format!("{prefix}:{code}"))))?;
        w.write_event(Event::End(BytesEnd::new("faultcode")))?;
        w.write_event(Event::Start(
            BytesStart::new("faultstring").with_attributes([("xml:lang", "en-US")]),
        ))?;
        w.write_event(Event::Text(BytesText::new(message)))?;
        w.write_event(Event::End(BytesEnd::new("faultstring")))?;
        w.write_event(Event::End(BytesEnd::new("s:Fault")))?;
        envelope_end(&mut w)
    })();
    xml_response(StatusCode::INTERNAL_SERVER_ERROR, w.into_inner())
}

fn envelope_start(w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
    w.write_event(Event::Decl(BytesDecl::new("1.0", Some("utf-8"), None)))?;
    w.write_event(Event::Start(
        BytesStart::new("s:Envelope").with_attributes([("xmlns:s", SOAP_ENV)]),
    ))?;
    w.write_event(Event::Start(BytesStart::new("s:Body")))
}

fn envelope_end(w: &mut Writer<Vec<u8>>) -> std::io::Result<()> {
    w.write_event(Event::End(BytesEnd::new("s:Body")))?;
    w.write_event(Event::End(BytesEnd::new("s:Envelope")))
}

/// `{op}Response/{op}Result` around `items`.
fn result(
    operation: &str,
    items: impl FnOnce(&mut Writer<Vec<u8>>) -> std::io::Result<()>,
) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let response = format!("{operation}Response");
    let result = format!("{operation}Result");
    // Writing into a Vec cannot fail.
    let _ = (|| -> std::io::Result<()> {
        envelope_start(&mut w)?;
        w.write_event(Event::Start(
            BytesStart::new(response.as_str()).with_attributes([("xmlns", TEMPURI)]),
        ))?;
        w.write_event(Event::Start(
            BytesStart::new(result.as_str()).with_attributes([("xmlns:a", V40), ("xmlns:i", XSI)]),
        ))?;
        items(&mut w)?;
        w.write_event(Event::End(BytesEnd::new(result.as_str())))?;
        w.write_event(Event::End(BytesEnd::new(response.as_str())))?;
        envelope_end(&mut w)
    })();
    w.into_inner()
}

/// `<a:name>text</a:name>`, or `<a:name i:nil="true"/>` for `None`.
fn field(w: &mut Writer<Vec<u8>>, name: &str, text: Option<&str>) -> std::io::Result<()> {
    match text {
        Some(text) => {
            w.write_event(Event::Start(BytesStart::new(name)))?;
            w.write_event(Event::Text(BytesText::new(text)))?;
            w.write_event(Event::End(BytesEnd::new(name)))
        }
        None => w.write_event(Event::Empty(
            BytesStart::new(name).with_attributes([("i:nil", "true")]),
        )),
    }
}

fn guid_list(w: &mut Writer<Vec<u8>>, name: &str, ids: &[String]) -> std::io::Result<()> {
    w.write_event(Event::Start(
        BytesStart::new(name).with_attributes([("xmlns:b", ARRAYS)]),
    ))?;
    for id in ids {
        field(w, "b:guid", Some(id))?;
    }
    w.write_event(Event::End(BytesEnd::new(name)))
}

fn sessions_response(world: &World, ids: &[String], base_url: &str) -> Vec<u8> {
    let sessions: Vec<&Session> = ids.iter().filter_map(|id| world.sessions.get(id)).collect();
    result(Service::Sessions.operation(), |w| {
        for s in sessions {
            let folder = world.folders.get(&s.folder_id);
            let recorders: Vec<String> = s
                .schedule
                .iter()
                .map(|sch| sch.recorder_id.clone())
                .collect();
            let viewer = format!("{base_url}/Panopto/Pages/Viewer.aspx?id={}", s.id);
            w.write_event(Event::Start(BytesStart::new("a:Session")))?;
            // DataContract members in alphabetical order.
            field(w, "a:CreatorId", Some(super::rest::API_USER_ID))?;
            field(w, "a:Description", s.description.as_deref())?;
            field(
                w,
                "a:Duration",
                s.duration().map(|d| d.to_string()).as_deref(),
            )?;
            field(w, "a:ExternalId", None)?;
            field(w, "a:FolderId", Some(&s.folder_id))?;
            field(w, "a:FolderName", folder.map(|f| f.name.as_str()))?;
            field(w, "a:Id", Some(&s.id))?;
            let broadcast = s.schedule.as_ref().is_some_and(|sch| sch.is_broadcast);
            field(
                w,
                "a:IsBroadcast",
                Some(if broadcast { "true" } else { "false" }),
            )?;
            field(w, "a:Name", Some(&s.name))?;
            guid_list(w, "a:RemoteRecorderIds", &recorders)?;
            let start = s.start_time().to_rfc3339_opts(SecondsFormat::Secs, true);
            field(w, "a:StartTime", Some(&start))?;
            field(w, "a:State", Some(s.state.as_str()))?;
            field(w, "a:StatusMessage", None)?;
            field(w, "a:ViewerUrl", Some(&viewer))?;
            w.write_event(Event::End(BytesEnd::new("a:Session")))?;
        }
        Ok(())
    })
}

fn recorders_response(world: &World, ids: &[String]) -> Vec<u8> {
    let recorders: Vec<_> = ids
        .iter()
        .filter_map(|id| world.recorders.get(id))
        .collect();
    result(Service::Recorders.operation(), |w| {
        for r in recorders {
            let state = world
                .recorder_state(&r.id)
                .map_or("Disconnected", |s| s.as_str());
            w.write_event(Event::Start(BytesStart::new("a:RemoteRecorder")))?;
            w.write_event(Event::Empty(BytesStart::new("a:Devices")))?;
            field(w, "a:ExternalId", None)?;
            field(w, "a:Id", Some(&r.id))?;
            field(w, "a:MachineIP", Some("10.0.0.10"))?;
            field(w, "a:Name", Some(&r.name))?;
            field(w, "a:PreviewUrl", None)?;
            guid_list(w, "a:ScheduledRecordings", &world.recorder_bookings(&r.id))?;
            field(w, "a:SettingsUrl", None)?;
            field(w, "a:State", Some(state))?;
            w.write_event(Event::End(BytesEnd::new("a:RemoteRecorder")))?;
        }
        Ok(())
    })
}
