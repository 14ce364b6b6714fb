//! SOAP 1.1 endpoints: `SessionManagement.svc` (`GetSessionsById`,
//! `GetAllFoldersByExternalId`, `UpdateFolderExternalIdWithProvider`) and
//! `RemoteRecorderManagement.svc` (`GetRemoteRecordersById`). Requests are read and answers
//! written with quick-xml; bad credentials, an unknown action, an unreadable message, an
//! unknown folder or an external id another folder holds get a `Fault` (HTTP 500, as WCF
//! answers them). Unknown ids are left out of read answers.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::SecondsFormat;
use quick_xml::Writer;
use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};

use super::PanoptoSimError;
use super::server::{App, lock};
use super::world::{Folder, Session, World};
use super::xml::Element;

pub(crate) const SOAP_ENV: &str = "http://schemas.xmlsoap.org/soap/envelope/";
pub(crate) const TEMPURI: &str = "http://tempuri.org/";
const V40: &str = "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V40";
/// The data contract namespace of 4.6's SOAP `Folder`.
const V46_SOAP: &str =
    "http://schemas.datacontract.org/2004/07/Panopto.Server.Services.PublicAPI.V46.Soap";
const ARRAYS: &str = "http://schemas.microsoft.com/2003/10/Serialization/Arrays";
const XSI: &str = "http://www.w3.org/2001/XMLSchema-instance";
const DISPATCHER: &str =
    "http://schemas.microsoft.com/net/2005/12/windowscommunicationfoundation/dispatcher";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    Sessions,
    Recorders,
}

/// The operations answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Operation {
    SessionsById,
    RecordersById,
    FoldersByExternalId,
    UpdateFolderExternalIdWithProvider,
}

impl Operation {
    const ALL: [Operation; 4] = [
        Operation::SessionsById,
        Operation::RecordersById,
        Operation::FoldersByExternalId,
        Operation::UpdateFolderExternalIdWithProvider,
    ];

    /// The operation `action` names on `service`, if it is one answered there.
    fn of(service: Service, action: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|op| op.service() == service && op.action() == action)
    }

    fn service(self) -> Service {
        match self {
            Operation::RecordersById => Service::Recorders,
            _ => Service::Sessions,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Operation::SessionsById => "GetSessionsById",
            Operation::RecordersById => "GetRemoteRecordersById",
            Operation::FoldersByExternalId => "GetAllFoldersByExternalId",
            Operation::UpdateFolderExternalIdWithProvider => "UpdateFolderExternalIdWithProvider",
        }
    }

    fn action(self) -> &'static str {
        match self {
            Operation::SessionsById => "http://tempuri.org/ISessionManagement/GetSessionsById",
            Operation::RecordersById => {
                "http://tempuri.org/IRemoteRecorderManagement/GetRemoteRecordersById"
            }
            Operation::FoldersByExternalId => {
                "http://tempuri.org/ISessionManagement/GetAllFoldersByExternalId"
            }
            Operation::UpdateFolderExternalIdWithProvider => {
                "http://tempuri.org/ISessionManagement/UpdateFolderExternalIdWithProvider"
            }
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
    let Some(operation) = Operation::of(service, &action) else {
        return fault(
            app,
            ("a", DISPATCHER, "ActionNotSupported"),
            &format!(
                "The message with Action '{action}' cannot be processed at the receiver, due to a \
                 ContractFilter mismatch at the EndpointDispatcher."
            ),
        );
    };
    let request = match read_request(body, operation) {
        Ok(request) => request,
        Err(message) => return fault(app, ("s", SOAP_ENV, "Client"), &message),
    };
    let known = lock(&app.soap_users).get(&request.user_key) == Some(&request.password);
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
    let answer = {
        let mut world = app.world();
        match request.args {
            Args::SessionsById(ids) => Ok(sessions_response(&world, &ids, &app.base_url)),
            Args::RecordersById(ids) => Ok(recorders_response(&world, &ids)),
            Args::FoldersByExternalId {
                external_ids,
                providers,
            } => Ok(folders_response(
                &world,
                &world.folders_by_external_id(&external_ids, &providers),
                &app.base_url,
            )),
            Args::UpdateFolderExternalIdWithProvider {
                folder_id,
                external_id,
                provider,
            } => world
                .set_folder_external_id(&folder_id, &provider, &external_id)
                .map(|()| empty_response(operation.name())),
        }
    };
    match answer {
        Ok(xml) => xml_response(StatusCode::OK, xml),
        // Panopto's fault for an unknown id says "... was not found".
        Err(PanoptoSimError::NotFound { kind, id }) => fault(
            app,
            ("s", SOAP_ENV, "Client"),
            &format!("The {kind} with id '{id}' was not found"),
        ),
        Err(e) => fault(app, ("s", SOAP_ENV, "Client"), &e.to_string()),
    }
}

struct SoapRequest {
    user_key: String,
    password: String,
    args: Args,
}

/// An operation's parameters after `auth`.
enum Args {
    SessionsById(Vec<String>),
    RecordersById(Vec<String>),
    FoldersByExternalId {
        external_ids: Vec<String>,
        providers: Vec<String>,
    },
    UpdateFolderExternalIdWithProvider {
        folder_id: String,
        external_id: String,
        provider: String,
    },
}

fn read_request(body: &[u8], operation: Operation) -> Result<SoapRequest, String> {
    let root = Element::parse(body).map_err(|e| format!("The message could not be read: {e}"))?;
    if !root.is(SOAP_ENV, "Envelope") {
        return Err("The message is not a SOAP 1.1 envelope".into());
    }
    let op = root
        .children
        .iter()
        .find(|c| c.is(SOAP_ENV, "Body"))
        .and_then(|b| b.children.first())
        .filter(|op| op.is(TEMPURI, operation.name()))
        .ok_or_else(|| format!("The Body does not hold a {} request", operation.name()))?;
    let auth = op
        .child("auth")
        .ok_or("The request carries no AuthenticationInfo")?;
    if auth.child_text("AuthCode").is_some() && auth.child_text("Password").is_none() {
        return Err("AuthCode authentication is not supported by this site".into());
    }
    let args = match operation {
        Operation::SessionsById => Args::SessionsById(guids(op, "sessionIds")?),
        Operation::RecordersById => Args::RecordersById(guids(op, "remoteRecorderIds")?),
        Operation::FoldersByExternalId => Args::FoldersByExternalId {
            external_ids: items(op, "folderExternalIds", "string"),
            providers: items(op, "providerNames", "string"),
        },
        Operation::UpdateFolderExternalIdWithProvider => {
            let folder_id = op.child_text("folderId").unwrap_or_default().to_string();
            valid_guid(&folder_id)?;
            // Panopto's contract capitalises this one parameter; WCF names are case-sensitive.
            let required = |name: &str| {
                op.child_text(name)
                    .map(str::to_string)
                    .ok_or_else(|| format!("The request has no {name}"))
            };
            Args::UpdateFolderExternalIdWithProvider {
                folder_id,
                external_id: required("externalId")?,
                provider: required("SiteMembershipProviderName")?,
            }
        }
    };
    Ok(SoapRequest {
        user_key: auth.child_text("UserKey").unwrap_or_default().to_string(),
        password: auth.child_text("Password").unwrap_or_default().to_string(),
        args,
    })
}

/// The texts of an array parameter's `{item}` elements (Arrays namespace).
fn items(op: &Element, name: &str, item: &str) -> Vec<String> {
    op.child(name)
        .map(|list| {
            list.children
                .iter()
                .filter(|i| i.is(ARRAYS, item))
                .map(|i| i.text.trim().to_string())
                .collect()
        })
        .unwrap_or_default()
}

fn guids(op: &Element, name: &str) -> Result<Vec<String>, String> {
    let ids = items(op, name, "guid");
    for id in &ids {
        valid_guid(id)?;
    }
    Ok(ids)
}

fn valid_guid(id: &str) -> Result<(), String> {
    uuid::Uuid::parse_str(id)
        .map(|_| ())
        .map_err(|_| format!("'{id}' is not a valid Guid"))
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

/// `{op}Response/{op}Result` around `items`, whose data contract namespace is `namespace`.
fn result(
    operation: &str,
    namespace: &str,
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
            BytesStart::new(result.as_str())
                .with_attributes([("xmlns:a", namespace), ("xmlns:i", XSI)]),
        ))?;
        items(&mut w)?;
        w.write_event(Event::End(BytesEnd::new(result.as_str())))?;
        w.write_event(Event::End(BytesEnd::new(response.as_str())))?;
        envelope_end(&mut w)
    })();
    w.into_inner()
}

/// The (empty) `{op}Response` of an operation that returns nothing.
fn empty_response(operation: &str) -> Vec<u8> {
    let mut w = Writer::new(Vec::new());
    let response = format!("{operation}Response");
    // Writing into a Vec cannot fail.
    let _ = (|| -> std::io::Result<()> {
        envelope_start(&mut w)?;
        w.write_event(Event::Empty(
            BytesStart::new(response.as_str()).with_attributes([("xmlns", TEMPURI)]),
        ))?;
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

fn string_list(w: &mut Writer<Vec<u8>>, name: &str, items: &[String]) -> std::io::Result<()> {
    w.write_event(Event::Start(
        BytesStart::new(name).with_attributes([("xmlns:b", ARRAYS)]),
    ))?;
    for item in items {
        field(w, "b:string", Some(item))?;
    }
    w.write_event(Event::End(BytesEnd::new(name)))
}

/// 4.6's SOAP `Folder`, each with the external id it was found by.
fn folders_response(world: &World, found: &[(&Folder, &str)], base_url: &str) -> Vec<u8> {
    result(Operation::FoldersByExternalId.name(), V46_SOAP, |w| {
        for (f, external_id) in found {
            let children: Vec<String> = world
                .folders
                .values()
                .filter(|c| c.parent.as_deref() == Some(f.id.as_str()))
                .map(|c| c.id.clone())
                .collect();
            let sessions: Vec<String> = world
                .sessions
                .values()
                .filter(|s| s.folder_id == f.id)
                .map(|s| s.id.clone())
                .collect();
            let embed = format!("{base_url}/Panopto/Pages/Embed/List.aspx?folderID={}", f.id);
            let list = format!(
                "{base_url}/Panopto/Pages/Sessions/List.aspx#folderID=%22{}%22",
                f.id
            );
            w.write_event(Event::Start(BytesStart::new("a:Folder")))?;
            // FolderBase's members in alphabetical order, then Folder's own (DataContract).
            field(w, "a:AllowPublicNotes", Some("false"))?;
            field(w, "a:AllowSessionDownload", Some("false"))?;
            field(w, "a:AudioPodcastITunesUrl", None)?;
            field(w, "a:AudioRssUrl", None)?;
            guid_list(w, "a:ChildFolders", &children)?;
            field(w, "a:DeliveriesHaveSpecifiedOrder", Some("false"))?;
            field(w, "a:Description", f.description.as_deref())?;
            field(w, "a:EmbedUploaderUrl", None)?;
            field(w, "a:EmbedUrl", Some(&embed))?;
            field(w, "a:EnablePodcast", Some("false"))?;
            field(w, "a:Id", Some(&f.id))?;
            field(w, "a:IsPublic", Some("false"))?;
            field(w, "a:ListUrl", Some(&list))?;
            field(w, "a:Name", Some(&f.name))?;
            field(w, "a:ParentFolder", f.parent.as_deref())?;
            string_list(w, "a:Presenters", &[])?;
            guid_list(w, "a:Sessions", &sessions)?;
            field(w, "a:SettingsUrl", None)?;
            field(w, "a:VideoPodcastITunesUrl", None)?;
            field(w, "a:VideoRssUrl", None)?;
            field(w, "a:ExternalId", Some(external_id))?;
            w.write_event(Event::End(BytesEnd::new("a:Folder")))?;
        }
        Ok(())
    })
}

fn sessions_response(world: &World, ids: &[String], base_url: &str) -> Vec<u8> {
    let sessions: Vec<&Session> = ids.iter().filter_map(|id| world.sessions.get(id)).collect();
    result(Operation::SessionsById.name(), V40, |w| {
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
    result(Operation::RecordersById.name(), V40, |w| {
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
