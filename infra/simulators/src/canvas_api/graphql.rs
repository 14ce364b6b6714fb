//! A small real GraphQL engine for `POST /api/graphql`: lexer, parser, validation against a
//! static subset of Canvas's schema, variable coercion and an executor over the world.
//!
//! Errors come back the way graphql-ruby (Canvas) sends them, with HTTP 200: syntax and
//! validation errors (unknown field, missing or undeclared variable) answer
//! `{"errors": [...]}` without `data`; execution errors (a bad cursor) null the field and
//! add an error with its `path`. Fragments are not supported and say so.
//!
//! Connections are Relay's: `nodes`, `edges { cursor node }`, `pageInfo`; `first` defaults
//! to 20 and is capped at 100. Cursors are graphql-ruby's: the base64 of an offset, so a
//! roster that changes between pages shifts under a walking client, as it does in Canvas.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Map, Value, json};

use super::params::Params;
use super::rest::{ApiError, Render, json_response};
use super::server::{App, CourseIndex, lock};
use super::world::{
    Course, ENROLLMENT_STATES, ENROLLMENT_TYPES, Enrollment, Module, Section, User, World,
    rfc3339_s, to_global,
};

const DEFAULT_PAGE: usize = 20;
const MAX_PAGE: usize = 100;
const COURSE_STATES: [&str; 5] = ["created", "claimed", "available", "completed", "deleted"];

// --- lexer -------------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    column: usize,
}

impl Pos {
    fn json(self) -> Value {
        json!({ "line": self.line, "column": self.column })
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Punct(char),
    Spread,
    Name(String),
    Int(i64),
    Float(f64),
    Str(String),
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::Punct(c) => format!("\"{c}\""),
            Tok::Spread => "\"...\"".into(),
            Tok::Name(n) => format!("\"{n}\""),
            Tok::Int(i) => format!("\"{i}\""),
            Tok::Float(f) => format!("\"{f}\""),
            Tok::Str(s) => format!("string \"{s}\""),
            Tok::Eof => "end of document".into(),
        }
    }
}

/// An error before execution (syntax or validation).
#[derive(Debug, Clone, PartialEq)]
struct GqlError {
    message: String,
    pos: Option<Pos>,
}

impl GqlError {
    fn at(message: impl Into<String>, pos: Pos) -> Self {
        Self {
            message: message.into(),
            pos: Some(pos),
        }
    }

    fn json(&self) -> Value {
        let mut error = json!({ "message": self.message });
        if let Some(pos) = self.pos {
            error["locations"] = json!([pos.json()]);
        }
        error
    }
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: usize,
    column: usize,
}

impl Lexer {
    fn new(source: &str) -> Self {
        Self {
            chars: source.chars().collect(),
            i: 0,
            line: 1,
            column: 1,
        }
    }

    fn peek(&self, ahead: usize) -> Option<char> {
        self.chars.get(self.i + ahead).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek(0)?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn pos(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn tokens(mut self) -> Result<Vec<(Tok, Pos)>, GqlError> {
        let mut out = Vec::new();
        while let Some(c) = self.peek(0) {
            let pos = self.pos();
            match c {
                ' ' | '\t' | '\n' | '\r' | ',' | '\u{feff}' => {
                    self.bump();
                }
                '#' => {
                    while self.peek(0).is_some_and(|c| c != '\n' && c != '\r') {
                        self.bump();
                    }
                }
                '!' | '$' | '(' | ')' | ':' | '=' | '@' | '[' | ']' | '{' | '}' | '|' | '&' => {
                    self.bump();
                    out.push((Tok::Punct(c), pos));
                }
                '.' => {
                    if self.peek(1) == Some('.') && self.peek(2) == Some('.') {
                        self.bump();
                        self.bump();
                        self.bump();
                        out.push((Tok::Spread, pos));
                    } else {
                        return Err(GqlError::at(
                            format!(
                                "Parse error on \".\" at [{}, {}]: unexpected character",
                                pos.line, pos.column
                            ),
                            pos,
                        ));
                    }
                }
                '"' => out.push((self.string(pos)?, pos)),
                '-' | '0'..='9' => out.push((self.number(pos)?, pos)),
                c if c == '_' || c.is_ascii_alphabetic() => {
                    let mut name = String::new();
                    while let Some(c) = self
                        .peek(0)
                        .filter(|c| *c == '_' || c.is_ascii_alphanumeric())
                    {
                        name.push(c);
                        self.bump();
                    }
                    out.push((Tok::Name(name), pos));
                }
                other => {
                    return Err(GqlError::at(
                        format!(
                            "Parse error on \"{other}\" at [{}, {}]: unexpected character",
                            pos.line, pos.column
                        ),
                        pos,
                    ));
                }
            }
        }
        out.push((Tok::Eof, self.pos()));
        Ok(out)
    }

    fn string(&mut self, pos: Pos) -> Result<Tok, GqlError> {
        let unterminated = || {
            GqlError::at(
                format!(
                    "Parse error at [{}, {}]: unterminated string",
                    pos.line, pos.column
                ),
                pos,
            )
        };
        if self.peek(1) == Some('"') && self.peek(2) == Some('"') {
            for _ in 0..3 {
                self.bump();
            }
            let mut text = String::new();
            loop {
                match self.peek(0) {
                    None => return Err(unterminated()),
                    Some('"') if self.peek(1) == Some('"') && self.peek(2) == Some('"') => {
                        for _ in 0..3 {
                            self.bump();
                        }
                        return Ok(Tok::Str(text.trim().to_string()));
                    }
                    Some('\\')
                        if self.peek(1) == Some('"')
                            && self.peek(2) == Some('"')
                            && self.peek(3) == Some('"') =>
                    {
                        self.bump();
                        for _ in 0..3 {
                            self.bump();
                        }
                        text.push_str("\"\"\"");
                    }
                    Some(c) => {
                        self.bump();
                        text.push(c);
                    }
                }
            }
        }
        self.bump();
        let mut text = String::new();
        loop {
            match self.bump() {
                None | Some('\n') | Some('\r') => return Err(unterminated()),
                Some('"') => return Ok(Tok::Str(text)),
                Some('\\') => {
                    let escaped = match self.bump() {
                        Some('"') => '"',
                        Some('\\') => '\\',
                        Some('/') => '/',
                        Some('b') => '\u{8}',
                        Some('f') => '\u{c}',
                        Some('n') => '\n',
                        Some('r') => '\r',
                        Some('t') => '\t',
                        Some('u') => {
                            let hex: String = (0..4).filter_map(|_| self.bump()).collect();
                            u32::from_str_radix(&hex, 16)
                                .ok()
                                .and_then(char::from_u32)
                                .ok_or_else(|| {
                                    GqlError::at(
                                        format!("Parse error: bad unicode escape \\u{hex}"),
                                        pos,
                                    )
                                })?
                        }
                        other => {
                            return Err(GqlError::at(
                                format!(
                                    "Parse error: bad escape \\{}",
                                    other.map(String::from).unwrap_or_default()
                                ),
                                pos,
                            ));
                        }
                    };
                    text.push(escaped);
                }
                Some(c) => text.push(c),
            }
        }
    }

    fn number(&mut self, pos: Pos) -> Result<Tok, GqlError> {
        let mut text = String::new();
        if self.peek(0) == Some('-') {
            text.push('-');
            self.bump();
        }
        let digits = |lexer: &mut Self, text: &mut String| {
            let mut any = false;
            while let Some(c) = lexer.peek(0).filter(char::is_ascii_digit) {
                text.push(c);
                lexer.bump();
                any = true;
            }
            any
        };
        let bad = |text: &str| {
            GqlError::at(
                format!(
                    "Parse error on \"{text}\" at [{}, {}]: invalid number",
                    pos.line, pos.column
                ),
                pos,
            )
        };
        if !digits(self, &mut text) {
            return Err(bad(&text));
        }
        let mut float = false;
        if self.peek(0) == Some('.') && self.peek(1).is_some_and(|c| c.is_ascii_digit()) {
            float = true;
            text.push('.');
            self.bump();
            digits(self, &mut text);
        }
        if matches!(self.peek(0), Some('e' | 'E')) {
            float = true;
            text.push('e');
            self.bump();
            if let Some(sign @ ('+' | '-')) = self.peek(0) {
                text.push(sign);
                self.bump();
            }
            if !digits(self, &mut text) {
                return Err(bad(&text));
            }
        }
        if self
            .peek(0)
            .is_some_and(|c| c == '_' || c == '.' || c.is_ascii_alphabetic())
        {
            return Err(bad(&text));
        }
        if float {
            text.parse().map(Tok::Float).map_err(|_| bad(&text))
        } else {
            text.parse().map(Tok::Int).map_err(|_| bad(&text))
        }
    }
}

// --- parser ------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Ast {
    Var(String),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    Null,
    Enum(String),
    List(Vec<Ast>),
    Object(Vec<(String, Ast)>),
}

#[derive(Debug, Clone, PartialEq)]
struct Arg {
    name: String,
    value: Ast,
    pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
struct Directive {
    name: String,
    args: Vec<Arg>,
    pos: Pos,
}

#[derive(Debug, Clone, PartialEq)]
struct Field {
    alias: Option<String>,
    name: String,
    args: Vec<Arg>,
    directives: Vec<Directive>,
    selection: Option<Vec<Field>>,
    pos: Pos,
}

impl Field {
    fn key(&self) -> &str {
        self.alias.as_deref().unwrap_or(&self.name)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum TypeRef {
    Named(String),
    List(Box<TypeRef>),
    NonNull(Box<TypeRef>),
}

impl TypeRef {
    /// Parses a schema type string such as `[EnrollmentType!]` or `ID!`.
    fn of(text: &str) -> Self {
        if let Some(inner) = text.strip_suffix('!') {
            return Self::NonNull(Box::new(Self::of(inner)));
        }
        if let Some(inner) = text.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            return Self::List(Box::new(Self::of(inner)));
        }
        Self::Named(text.to_string())
    }

    fn base(&self) -> &str {
        match self {
            Self::Named(name) => name,
            Self::List(inner) | Self::NonNull(inner) => inner.base(),
        }
    }

    fn text(&self) -> String {
        match self {
            Self::Named(name) => name.clone(),
            Self::List(inner) => format!("[{}]", inner.text()),
            Self::NonNull(inner) => format!("{}!", inner.text()),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
struct VarDef {
    name: String,
    ty: TypeRef,
    default: Option<Ast>,
    pos: Pos,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpKind {
    Query,
    Mutation,
    Subscription,
}

#[derive(Debug, Clone, PartialEq)]
struct Operation {
    kind: OpKind,
    name: Option<String>,
    vars: Vec<VarDef>,
    selection: Vec<Field>,
    pos: Pos,
}

impl Operation {
    fn label(&self) -> String {
        let kind = match self.kind {
            OpKind::Query => "query",
            OpKind::Mutation => "mutation",
            OpKind::Subscription => "subscription",
        };
        match &self.name {
            Some(name) => format!("{kind} {name}"),
            None => kind.to_string(),
        }
    }
}

struct Parser {
    tokens: Vec<(Tok, Pos)>,
    i: usize,
}

fn fragments_unsupported(pos: Pos) -> GqlError {
    GqlError::at(
        "Fragments are not supported by the Canvas API simulator; write the fields inline",
        pos,
    )
}

impl Parser {
    fn peek(&self) -> &Tok {
        self.tokens.get(self.i).map_or(&Tok::Eof, |(t, _)| t)
    }

    fn pos(&self) -> Pos {
        self.tokens
            .get(self.i)
            .or_else(|| self.tokens.last())
            .map_or(Pos { line: 1, column: 1 }, |(_, p)| *p)
    }

    fn bump(&mut self) -> Tok {
        let tok = self.peek().clone();
        if self.i < self.tokens.len() {
            self.i += 1;
        }
        tok
    }

    fn at_punct(&self, c: char) -> bool {
        *self.peek() == Tok::Punct(c)
    }

    fn unexpected(&self, expected: &str) -> GqlError {
        let pos = self.pos();
        GqlError::at(
            format!(
                "Parse error on {} at [{}, {}]: expected {expected}",
                self.peek().describe(),
                pos.line,
                pos.column
            ),
            pos,
        )
    }

    fn expect(&mut self, c: char) -> Result<(), GqlError> {
        if self.at_punct(c) {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(&format!("\"{c}\"")))
        }
    }

    fn name(&mut self, what: &str) -> Result<String, GqlError> {
        match self.peek().clone() {
            Tok::Name(name) => {
                self.bump();
                Ok(name)
            }
            _ => Err(self.unexpected(what)),
        }
    }

    fn document(&mut self) -> Result<Vec<Operation>, GqlError> {
        let mut operations = Vec::new();
        loop {
            let pos = self.pos();
            match self.peek().clone() {
                Tok::Eof => break,
                Tok::Punct('{') => operations.push(Operation {
                    kind: OpKind::Query,
                    name: None,
                    vars: Vec::new(),
                    selection: self.selection_set()?,
                    pos,
                }),
                Tok::Name(word) if word == "fragment" => return Err(fragments_unsupported(pos)),
                Tok::Name(word)
                    if ["query", "mutation", "subscription"].contains(&word.as_str()) =>
                {
                    operations.push(self.operation()?)
                }
                _ => return Err(self.unexpected("an operation (query, mutation or {)")),
            }
        }
        if operations.is_empty() {
            return Err(GqlError::at(
                "Parse error: the document has no operation",
                self.pos(),
            ));
        }
        Ok(operations)
    }

    fn operation(&mut self) -> Result<Operation, GqlError> {
        let pos = self.pos();
        let kind = match self.bump() {
            Tok::Name(word) if word == "mutation" => OpKind::Mutation,
            Tok::Name(word) if word == "subscription" => OpKind::Subscription,
            _ => OpKind::Query,
        };
        let name = match self.peek() {
            Tok::Name(_) => Some(self.name("an operation name")?),
            _ => None,
        };
        let mut vars = Vec::new();
        if self.at_punct('(') {
            self.bump();
            while !self.at_punct(')') {
                let var_pos = self.pos();
                self.expect('$')?;
                let name = self.name("a variable name")?;
                self.expect(':')?;
                let ty = self.type_ref()?;
                let default = if self.at_punct('=') {
                    self.bump();
                    Some(self.value(true)?)
                } else {
                    None
                };
                self.directives(true)?;
                vars.push(VarDef {
                    name,
                    ty,
                    default,
                    pos: var_pos,
                });
            }
            self.expect(')')?;
            if vars.is_empty() {
                return Err(self.unexpected("a variable definition"));
            }
        }
        self.directives(false)?;
        Ok(Operation {
            kind,
            name,
            vars,
            selection: self.selection_set()?,
            pos,
        })
    }

    fn type_ref(&mut self) -> Result<TypeRef, GqlError> {
        let inner = if self.at_punct('[') {
            self.bump();
            let item = self.type_ref()?;
            self.expect(']')?;
            TypeRef::List(Box::new(item))
        } else {
            TypeRef::Named(self.name("a type name")?)
        };
        if self.at_punct('!') {
            self.bump();
            return Ok(TypeRef::NonNull(Box::new(inner)));
        }
        Ok(inner)
    }

    fn directives(&mut self, constant: bool) -> Result<Vec<Directive>, GqlError> {
        let mut out = Vec::new();
        while self.at_punct('@') {
            let pos = self.pos();
            self.bump();
            let name = self.name("a directive name")?;
            let args = self.arguments(constant)?;
            out.push(Directive { name, args, pos });
        }
        Ok(out)
    }

    fn selection_set(&mut self) -> Result<Vec<Field>, GqlError> {
        self.expect('{')?;
        let mut fields = Vec::new();
        while !self.at_punct('}') {
            match self.peek() {
                Tok::Spread => return Err(fragments_unsupported(self.pos())),
                Tok::Name(_) => fields.push(self.field()?),
                _ => return Err(self.unexpected("a field name")),
            }
        }
        self.expect('}')?;
        if fields.is_empty() {
            return Err(self.unexpected("at least one field"));
        }
        Ok(fields)
    }

    fn field(&mut self) -> Result<Field, GqlError> {
        let pos = self.pos();
        let first = self.name("a field name")?;
        let (alias, name) = if self.at_punct(':') {
            self.bump();
            (Some(first), self.name("a field name after the alias")?)
        } else {
            (None, first)
        };
        let args = self.arguments(false)?;
        let directives = self.directives(false)?;
        let selection = if self.at_punct('{') {
            Some(self.selection_set()?)
        } else {
            None
        };
        Ok(Field {
            alias,
            name,
            args,
            directives,
            selection,
            pos,
        })
    }

    fn arguments(&mut self, constant: bool) -> Result<Vec<Arg>, GqlError> {
        let mut args = Vec::new();
        if !self.at_punct('(') {
            return Ok(args);
        }
        self.bump();
        while !self.at_punct(')') {
            let pos = self.pos();
            let name = self.name("an argument name")?;
            self.expect(':')?;
            let value = self.value(constant)?;
            args.push(Arg { name, value, pos });
        }
        self.bump();
        if args.is_empty() {
            return Err(self.unexpected("an argument"));
        }
        Ok(args)
    }

    fn value(&mut self, constant: bool) -> Result<Ast, GqlError> {
        match self.peek().clone() {
            Tok::Punct('$') if !constant => {
                self.bump();
                Ok(Ast::Var(self.name("a variable name")?))
            }
            Tok::Int(i) => {
                self.bump();
                Ok(Ast::Int(i))
            }
            Tok::Float(f) => {
                self.bump();
                Ok(Ast::Float(f))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Ast::Str(s))
            }
            Tok::Name(word) => {
                self.bump();
                Ok(match word.as_str() {
                    "true" => Ast::Bool(true),
                    "false" => Ast::Bool(false),
                    "null" => Ast::Null,
                    _ => Ast::Enum(word),
                })
            }
            Tok::Punct('[') => {
                self.bump();
                let mut items = Vec::new();
                while !self.at_punct(']') {
                    if *self.peek() == Tok::Eof {
                        return Err(self.unexpected("\"]\""));
                    }
                    items.push(self.value(constant)?);
                }
                self.bump();
                Ok(Ast::List(items))
            }
            Tok::Punct('{') => {
                self.bump();
                let mut fields = Vec::new();
                while !self.at_punct('}') {
                    let name = self.name("an input field name")?;
                    self.expect(':')?;
                    fields.push((name, self.value(constant)?));
                }
                self.bump();
                Ok(Ast::Object(fields))
            }
            _ => Err(self.unexpected("a value")),
        }
    }
}

fn parse(source: &str) -> Result<Vec<Operation>, GqlError> {
    let tokens = Lexer::new(source).tokens()?;
    Parser { tokens, i: 0 }.document()
}

// --- schema ------------------------------------------------------------------------------

/// A field of the schema subset: its type (schema notation) and its arguments.
struct FieldDef {
    ty: &'static str,
    args: &'static [(&'static str, &'static str)],
}

const CONNECTION_ARGS: &[(&str, &str)] = &[
    ("first", "Int"),
    ("after", "String"),
    ("last", "Int"),
    ("before", "String"),
];
const ENROLLMENT_CONNECTION_ARGS: &[(&str, &str)] = &[
    ("first", "Int"),
    ("after", "String"),
    ("last", "Int"),
    ("before", "String"),
    ("filter", "EnrollmentFilterInput"),
];

fn field_def(parent: &str, name: &str) -> Option<FieldDef> {
    let plain = |ty| Some(FieldDef { ty, args: &[] });
    match (parent, name) {
        ("Query", "course") => Some(FieldDef {
            ty: "Course",
            args: &[("id", "ID"), ("sisId", "String")],
        }),
        ("Course" | "Section" | "Enrollment" | "User" | "Module", "_id" | "id") => plain("ID!"),
        ("Course" | "Section" | "Enrollment" | "User" | "Module", "createdAt" | "updatedAt") => {
            plain("DateTime")
        }
        ("Course", "name") => plain("String!"),
        ("Course", "courseCode" | "sisId") => plain("String"),
        ("Course", "state") => plain("CourseWorkflowState!"),
        ("Course", "sectionsConnection") => Some(FieldDef {
            ty: "SectionConnection",
            args: CONNECTION_ARGS,
        }),
        ("Course", "enrollmentsConnection") => Some(FieldDef {
            ty: "EnrollmentConnection",
            args: ENROLLMENT_CONNECTION_ARGS,
        }),
        ("Course", "modulesConnection") => Some(FieldDef {
            ty: "ModuleConnection",
            args: CONNECTION_ARGS,
        }),
        ("Section", "name") => plain("String!"),
        ("Section", "sisId") => plain("String"),
        ("Enrollment", "state") => plain("EnrollmentWorkflowState!"),
        ("Enrollment", "type") => plain("EnrollmentType!"),
        ("Enrollment", "section") => plain("Section"),
        ("Enrollment", "user") => plain("User"),
        ("Enrollment", "course") => plain("Course"),
        ("Enrollment", "limitPrivilegesToCourseSection") => plain("Boolean"),
        ("User", "name" | "shortName" | "sortableName" | "sisId" | "loginId") => plain("String"),
        ("Module", "name") => plain("String"),
        ("Module", "position") => plain("Int"),
        ("Module", "published") => plain("Boolean"),
        ("SectionConnection", "nodes") => plain("[Section]"),
        ("SectionConnection", "edges") => plain("[SectionEdge]"),
        ("EnrollmentConnection", "nodes") => plain("[Enrollment]"),
        ("EnrollmentConnection", "edges") => plain("[EnrollmentEdge]"),
        ("ModuleConnection", "nodes") => plain("[Module]"),
        ("ModuleConnection", "edges") => plain("[ModuleEdge]"),
        ("SectionConnection" | "EnrollmentConnection" | "ModuleConnection", "pageInfo") => {
            plain("PageInfo!")
        }
        ("SectionEdge" | "EnrollmentEdge" | "ModuleEdge", "cursor") => plain("String!"),
        ("SectionEdge", "node") => plain("Section"),
        ("EnrollmentEdge", "node") => plain("Enrollment"),
        ("ModuleEdge", "node") => plain("Module"),
        ("PageInfo", "startCursor" | "endCursor") => plain("String"),
        ("PageInfo", "hasNextPage" | "hasPreviousPage") => plain("Boolean!"),
        _ => None,
    }
}

fn enum_values(name: &str) -> Option<&'static [&'static str]> {
    match name {
        "EnrollmentWorkflowState" => Some(&ENROLLMENT_STATES),
        "EnrollmentType" => Some(&ENROLLMENT_TYPES),
        "CourseWorkflowState" => Some(&COURSE_STATES),
        _ => None,
    }
}

fn input_fields(name: &str) -> Option<&'static [(&'static str, &'static str)]> {
    match name {
        "EnrollmentFilterInput" => Some(&[
            ("types", "[EnrollmentType!]"),
            ("states", "[EnrollmentWorkflowState!]"),
            ("userIds", "[ID!]"),
            ("associatedUserIds", "[ID!]"),
        ]),
        _ => None,
    }
}

fn is_scalar(name: &str) -> bool {
    matches!(
        name,
        "ID" | "String" | "Int" | "Float" | "Boolean" | "DateTime"
    )
}

fn is_leaf(name: &str) -> bool {
    is_scalar(name) || enum_values(name).is_some()
}

fn is_input(name: &str) -> bool {
    is_leaf(name) || input_fields(name).is_some()
}

/// Input coercion of a JSON value (a variable, or a literal after substitution).
fn coerce(value: &Value, ty: &TypeRef) -> Result<Value, String> {
    match ty {
        TypeRef::NonNull(inner) => {
            if value.is_null() {
                return Err("Expected value to not be null".into());
            }
            coerce(value, inner)
        }
        _ if value.is_null() => Ok(Value::Null),
        TypeRef::List(inner) => match value {
            Value::Array(items) => items
                .iter()
                .map(|v| coerce(v, inner))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array),
            single => Ok(Value::Array(vec![coerce(single, inner)?])),
        },
        TypeRef::Named(name) => coerce_named(value, name),
    }
}

fn coerce_named(value: &Value, name: &str) -> Result<Value, String> {
    let wrong = || format!("Could not coerce value {value} to {name}");
    match name {
        "ID" => match value {
            Value::String(_) => Ok(value.clone()),
            Value::Number(n) if n.is_i64() || n.is_u64() => Ok(Value::String(n.to_string())),
            _ => Err(wrong()),
        },
        "String" | "DateTime" => value.is_string().then(|| value.clone()).ok_or_else(wrong),
        "Int" => value
            .as_i64()
            .filter(|i| i32::try_from(*i).is_ok())
            .map(Value::from)
            .ok_or_else(wrong),
        "Float" => value.as_f64().map(Value::from).ok_or_else(wrong),
        "Boolean" => value.is_boolean().then(|| value.clone()).ok_or_else(wrong),
        _ => {
            if let Some(values) = enum_values(name) {
                return match value.as_str() {
                    Some(v) if values.contains(&v) => Ok(value.clone()),
                    _ => Err(format!(
                        "Expected {value} to be one of: {}",
                        values.join(", ")
                    )),
                };
            }
            if let Some(fields) = input_fields(name) {
                let Some(object) = value.as_object() else {
                    return Err(wrong());
                };
                let mut out = Map::new();
                for (key, v) in object {
                    let Some((_, ty)) = fields.iter().find(|(f, _)| f == key) else {
                        return Err(format!("Field '{key}' is not defined on {name}"));
                    };
                    out.insert(key.clone(), coerce(v, &TypeRef::of(ty))?);
                }
                return Ok(Value::Object(out));
            }
            Err(format!("unknown input type {name}"))
        }
    }
}

/// A literal with variables substituted; `None` for an absent variable.
fn substitute(ast: &Ast, vars: &Map<String, Value>) -> Option<Value> {
    Some(match ast {
        Ast::Var(name) => vars.get(name)?.clone(),
        Ast::Int(i) => Value::from(*i),
        Ast::Float(f) => Value::from(*f),
        Ast::Str(s) | Ast::Enum(s) => Value::String(s.clone()),
        Ast::Bool(b) => Value::Bool(*b),
        Ast::Null => Value::Null,
        Ast::List(items) => Value::Array(
            items
                .iter()
                .map(|i| substitute(i, vars).unwrap_or(Value::Null))
                .collect(),
        ),
        Ast::Object(fields) => Value::Object(
            fields
                .iter()
                .filter_map(|(k, v)| substitute(v, vars).map(|v| (k.clone(), v)))
                .collect(),
        ),
    })
}

fn variables_in<'a>(ast: &'a Ast, out: &mut Vec<&'a str>) {
    match ast {
        Ast::Var(name) => out.push(name),
        Ast::List(items) => items.iter().for_each(|i| variables_in(i, out)),
        Ast::Object(fields) => fields.iter().for_each(|(_, v)| variables_in(v, out)),
        _ => {}
    }
}

// --- validation --------------------------------------------------------------------------

struct Validator<'a> {
    op: &'a Operation,
    declared: HashMap<&'a str, &'a VarDef>,
    used: HashSet<&'a str>,
    errors: Vec<Value>,
}

impl<'a> Validator<'a> {
    fn error(&mut self, message: String, pos: Pos, path: &[String]) {
        self.errors.push(json!({
            "message": message,
            "locations": [pos.json()],
            "path": path,
        }));
    }

    /// Arguments of a field or directive at `pos`, named `owner` in messages.
    fn check_args(
        &mut self,
        args: &'a [Arg],
        defs: &[(&str, &str)],
        (owner, pos): (&str, Pos),
        path: &[String],
    ) {
        for arg in args {
            let Some((_, ty)) = defs.iter().find(|(name, _)| *name == arg.name) else {
                self.error(
                    format!("{owner} doesn't accept argument '{}'", arg.name),
                    arg.pos,
                    path,
                );
                continue;
            };
            let mut vars = Vec::new();
            variables_in(&arg.value, &mut vars);
            for var in &vars {
                match self.declared.get(var).copied() {
                    None => self.error(
                        format!(
                            "Variable ${var} is used by {} but not declared",
                            self.op.label()
                        ),
                        arg.pos,
                        path,
                    ),
                    Some(def) => {
                        self.used.insert(var);
                        let expected = TypeRef::of(ty);
                        if arg.value == Ast::Var((*var).to_string())
                            && def.ty.base() != expected.base()
                        {
                            self.error(
                                format!(
                                    "Type mismatch on variable ${var} and argument {} ({} / {})",
                                    arg.name,
                                    def.ty.text(),
                                    expected.text()
                                ),
                                arg.pos,
                                path,
                            );
                        }
                    }
                }
            }
            if vars.is_empty()
                && let Some(value) = substitute(&arg.value, &Map::new())
                && let Err(problem) = coerce(&value, &TypeRef::of(ty))
            {
                self.error(
                    format!(
                        "Argument '{}' on {owner} has an invalid value ({value}). Expected type '{ty}'. {problem}",
                        arg.name
                    ),
                    arg.pos,
                    path,
                );
            }
        }
        for (name, ty) in defs {
            if ty.ends_with('!') && !args.iter().any(|a| a.name == *name) {
                self.error(
                    format!("{owner} is missing required arguments: {name}"),
                    pos,
                    path,
                );
            }
        }
    }

    fn fields(&mut self, parent: &str, fields: &'a [Field], path: &mut Vec<String>) {
        for field in fields {
            path.push(field.key().to_string());
            for directive in &field.directives {
                if matches!(directive.name.as_str(), "skip" | "include") {
                    self.check_args(
                        &directive.args,
                        &[("if", "Boolean!")],
                        (&format!("Directive @{}", directive.name), directive.pos),
                        path,
                    );
                } else {
                    self.error(
                        format!("Directive @{} is not defined", directive.name),
                        directive.pos,
                        path,
                    );
                }
            }
            if field.name == "__typename" {
                if field.selection.is_some() {
                    self.error(
                        "Selections can't be made on scalars (field '__typename' returns String)"
                            .into(),
                        field.pos,
                        path,
                    );
                }
                path.pop();
                continue;
            }
            let Some(def) = field_def(parent, &field.name) else {
                self.error(
                    format!("Field '{}' doesn't exist on type '{parent}'", field.name),
                    field.pos,
                    path,
                );
                path.pop();
                continue;
            };
            self.check_args(
                &field.args,
                def.args,
                (&format!("Field '{}'", field.name), field.pos),
                path,
            );
            let ty = TypeRef::of(def.ty);
            let base = ty.base().to_string();
            match (&field.selection, is_leaf(&base)) {
                (Some(selection), false) => self.fields(&base, selection, path),
                (None, false) => self.error(
                    format!(
                        "Field '{}' of type '{}' must have a selection of subfields. Try adding a selection like this: `{} {{ ... }}`",
                        field.name,
                        def.ty,
                        field.name
                    ),
                    field.pos,
                    path,
                ),
                (Some(_), true) => self.error(
                    format!(
                        "Selections can't be made on scalars (field '{}' returns {} but has selections)",
                        field.name, def.ty
                    ),
                    field.pos,
                    path,
                ),
                (None, true) => {}
            }
            path.pop();
        }
    }
}

// --- execution ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct PageInfo {
    start: Option<String>,
    end: Option<String>,
    has_next: bool,
    has_previous: bool,
}

#[derive(Debug, Clone)]
enum Obj<'w> {
    Query,
    Mutation,
    Course(&'w Course),
    Section(&'w Section),
    Enrollment(&'w Enrollment),
    User(&'w User),
    Module(&'w Module),
    Connection {
        ty: &'static str,
        edge: &'static str,
        edges: Vec<(Obj<'w>, String)>,
        info: PageInfo,
    },
    Edge {
        ty: &'static str,
        node: Box<Obj<'w>>,
        cursor: String,
    },
    PageInfo(PageInfo),
}

impl Obj<'_> {
    fn type_name(&self) -> &'static str {
        match self {
            Obj::Query => "Query",
            Obj::Mutation => "Mutation",
            Obj::Course(_) => "Course",
            Obj::Section(_) => "Section",
            Obj::Enrollment(_) => "Enrollment",
            Obj::User(_) => "User",
            Obj::Module(_) => "Module",
            Obj::Connection { ty, .. } | Obj::Edge { ty, .. } => ty,
            Obj::PageInfo(_) => "PageInfo",
        }
    }

    fn is_node(&self) -> bool {
        matches!(
            self,
            Obj::Course(_) | Obj::Section(_) | Obj::Enrollment(_) | Obj::User(_) | Obj::Module(_)
        )
    }
}

enum Out<'w> {
    Leaf(Value),
    One(Obj<'w>),
    Many(Vec<Obj<'w>>),
}

fn leaf(value: impl Into<Value>) -> Out<'static> {
    Out::Leaf(value.into())
}

fn relay_id(kind: &str, id: &str) -> String {
    STANDARD.encode(format!("{kind}-{id}"))
}

fn cursor(offset: usize) -> String {
    URL_SAFE_NO_PAD.encode(offset.to_string())
}

fn decode_cursor(text: &str) -> Result<usize, String> {
    let trimmed = text.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .ok()
        .and_then(|raw| String::from_utf8(raw).ok())
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("Invalid cursor: {text}"))
}

fn page_size(args: &Map<String, Value>, name: &str, field: &str) -> Result<Option<usize>, String> {
    match args.get(name).and_then(Value::as_i64) {
        None => Ok(None),
        Some(n) if n < 0 => Err(format!(
            "Argument '{name}' on Field '{field}' cannot be negative"
        )),
        Some(n) => Ok(Some(usize::try_from(n).unwrap_or(MAX_PAGE).min(MAX_PAGE))),
    }
}

/// Relay slicing over offsets: `after`/`before` bound the window, `first`/`last` take from it.
fn connection<'w>(
    ty: &'static str,
    edge: &'static str,
    field: &str,
    items: Vec<Obj<'w>>,
    args: &Map<String, Value>,
) -> Result<Obj<'w>, String> {
    let first = page_size(args, "first", field)?;
    let last = page_size(args, "last", field)?;
    let after = args
        .get("after")
        .and_then(Value::as_str)
        .map(decode_cursor)
        .transpose()?;
    let before = args
        .get("before")
        .and_then(Value::as_str)
        .map(decode_cursor)
        .transpose()?;
    let len = items.len();
    let mut start = after.unwrap_or(0).min(len);
    let bound = before
        .map_or(len, |b| b.saturating_sub(1))
        .min(len)
        .max(start);
    let mut end = bound;
    match (first, last) {
        (Some(first), _) => end = end.min(start + first),
        (None, None) => end = end.min(start + DEFAULT_PAGE),
        (None, Some(_)) => {}
    }
    if let Some(last) = last {
        start = start.max(end.saturating_sub(last));
    }
    let edges: Vec<(Obj<'w>, String)> = items
        .into_iter()
        .enumerate()
        .skip(start)
        .take(end - start)
        .map(|(index, obj)| (obj, cursor(index + 1)))
        .collect();
    let info = PageInfo {
        start: edges.first().map(|(_, c)| c.clone()),
        end: edges.last().map(|(_, c)| c.clone()),
        has_next: end < bound,
        has_previous: start > 0,
    };
    Ok(Obj::Connection {
        ty,
        edge,
        edges,
        info,
    })
}

struct Exec<'w, 'r> {
    world: &'w World,
    index: &'w CourseIndex,
    render: &'r Render,
    vars: &'r Map<String, Value>,
    errors: Vec<Value>,
    nodes: usize,
}

impl<'w> Exec<'w, '_> {
    fn included(&self, field: &Field) -> bool {
        field.directives.iter().all(|d| {
            let value = d
                .args
                .iter()
                .find(|a| a.name == "if")
                .and_then(|a| substitute(&a.value, self.vars))
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            match d.name.as_str() {
                "skip" => !value,
                "include" => value,
                _ => true,
            }
        })
    }

    fn arguments(&self, parent: &str, field: &Field) -> Result<Map<String, Value>, String> {
        let defs = field_def(parent, &field.name).map_or(&[][..], |d| d.args);
        let mut out = Map::new();
        for arg in &field.args {
            let Some(value) = substitute(&arg.value, self.vars) else {
                continue;
            };
            let ty = defs
                .iter()
                .find(|(n, _)| *n == arg.name)
                .map_or(TypeRef::Named("String".into()), |(_, t)| TypeRef::of(t));
            out.insert(arg.name.clone(), coerce(&value, &ty)?);
        }
        Ok(out)
    }

    fn object(&mut self, obj: &Obj<'w>, fields: &[Field], path: &mut Vec<Value>) -> Value {
        if obj.is_node() {
            self.nodes += 1;
        }
        let mut out = Map::new();
        for field in fields {
            if !self.included(field) {
                continue;
            }
            path.push(Value::from(field.key()));
            let value = if field.name == "__typename" {
                Value::from(obj.type_name())
            } else {
                let resolved = self
                    .arguments(obj.type_name(), field)
                    .and_then(|args| self.resolve(obj, &field.name, &args));
                let selection = field.selection.as_deref().unwrap_or(&[]);
                match resolved {
                    Ok(Out::Leaf(v)) => v,
                    Ok(Out::One(child)) => self.object(&child, selection, path),
                    Ok(Out::Many(children)) => {
                        let mut list = Vec::with_capacity(children.len());
                        for (index, child) in children.iter().enumerate() {
                            path.push(Value::from(index));
                            list.push(self.object(child, selection, path));
                            path.pop();
                        }
                        Value::Array(list)
                    }
                    Err(message) => {
                        self.errors.push(json!({
                            "message": message,
                            "locations": [field.pos.json()],
                            "path": path.clone(),
                        }));
                        Value::Null
                    }
                }
            };
            path.pop();
            out.insert(field.key().to_string(), value);
        }
        Value::Object(out)
    }

    fn find_course(&self, args: &Map<String, Value>) -> Result<Option<&'w Course>, String> {
        let w = self.world;
        let found = match (
            args.get("id").and_then(Value::as_str),
            args.get("sisId").and_then(Value::as_str),
        ) {
            (Some(id), None) => {
                let legacy = id.parse::<u64>().ok().or_else(|| {
                    STANDARD
                        .decode(id)
                        .ok()
                        .and_then(|raw| String::from_utf8(raw).ok())
                        .and_then(|s| s.strip_prefix("Course-").and_then(|n| n.parse().ok()))
                });
                legacy.and_then(|id| w.course(id))
            }
            (None, Some(sis)) => w
                .courses
                .values()
                .find(|c| c.sis_course_id.as_deref() == Some(sis)),
            _ => return Err("Must specify exactly one of id or sisId".into()),
        };
        Ok(found.filter(|c| !c.is_deleted()))
    }

    fn resolve(
        &mut self,
        obj: &Obj<'w>,
        field: &str,
        args: &Map<String, Value>,
    ) -> Result<Out<'w>, String> {
        let w = self.world;
        let r = self.render;
        let time = |t: &chrono::DateTime<chrono::Utc>| leaf(rfc3339_s(*t));
        let optional = |o: Option<Obj<'w>>| Ok(o.map_or(Out::Leaf(Value::Null), Out::One));
        let unknown = || {
            Err(format!(
                "Field '{field}' doesn't exist on type '{}'",
                obj.type_name()
            ))
        };
        match obj {
            Obj::Query => match field {
                "course" => optional(self.find_course(args)?.map(Obj::Course)),
                _ => unknown(),
            },
            Obj::Mutation => unknown(),
            Obj::Course(c) => match field {
                "_id" => Ok(leaf(r.id_text(c.id))),
                "id" => Ok(leaf(relay_id("Course", &r.id_text(c.id)))),
                "name" => Ok(leaf(c.name.clone())),
                "courseCode" => Ok(leaf(c.course_code.clone())),
                "sisId" => Ok(Out::Leaf(c.sis_course_id.clone().into())),
                "state" => Ok(leaf(c.workflow_state.clone())),
                "createdAt" => Ok(time(&c.created_at)),
                "updatedAt" => Ok(time(&c.updated_at)),
                "sectionsConnection" => {
                    let items = self
                        .index
                        .sections(c.id)
                        .iter()
                        .filter_map(|id| w.sections.get(id))
                        .filter(|s| !s.is_deleted())
                        .map(Obj::Section)
                        .collect();
                    connection("SectionConnection", "SectionEdge", field, items, args).map(Out::One)
                }
                "enrollmentsConnection" => {
                    let filter = args.get("filter").cloned().unwrap_or(Value::Null);
                    let list = |key: &str| -> Option<Vec<String>> {
                        filter.get(key).and_then(Value::as_array).map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect()
                        })
                    };
                    let states = list("states");
                    let types = list("types");
                    let users: Option<Vec<u64>> = list("userIds").map(|ids| {
                        ids.iter()
                            .filter_map(|i| i.parse::<u64>().ok().map(to_global))
                            .collect()
                    });
                    let items = self
                        .index
                        .enrollments(c.id)
                        .iter()
                        .filter_map(|id| w.enrollments.get(id))
                        .filter(|e| match &states {
                            Some(states) => states.contains(&e.workflow_state),
                            None => e.workflow_state != "deleted",
                        })
                        .filter(|e| {
                            types
                                .as_ref()
                                .is_none_or(|t| t.contains(&e.enrollment_type))
                        })
                        .filter(|e| users.as_ref().is_none_or(|u| u.contains(&e.user_id)))
                        .map(Obj::Enrollment)
                        .collect();
                    connection("EnrollmentConnection", "EnrollmentEdge", field, items, args)
                        .map(Out::One)
                }
                "modulesConnection" => {
                    let mut modules: Vec<&Module> = w
                        .modules
                        .values()
                        .filter(|m| m.course_id == c.id && m.workflow_state != "deleted")
                        .collect();
                    modules.sort_by_key(|m| (m.position, m.id));
                    let items = modules.into_iter().map(Obj::Module).collect();
                    connection("ModuleConnection", "ModuleEdge", field, items, args).map(Out::One)
                }
                _ => unknown(),
            },
            Obj::Section(s) => match field {
                "_id" => Ok(leaf(r.id_text(s.id))),
                "id" => Ok(leaf(relay_id("Section", &r.id_text(s.id)))),
                "name" => Ok(leaf(s.name.clone())),
                "sisId" => Ok(Out::Leaf(s.sis_section_id.clone().into())),
                "createdAt" => Ok(time(&s.created_at)),
                "updatedAt" => Ok(time(&s.updated_at)),
                _ => unknown(),
            },
            Obj::Enrollment(e) => match field {
                "_id" => Ok(leaf(r.id_text(e.id))),
                "id" => Ok(leaf(relay_id("Enrollment", &r.id_text(e.id)))),
                "state" => Ok(leaf(e.workflow_state.clone())),
                "type" => Ok(leaf(e.enrollment_type.clone())),
                "limitPrivilegesToCourseSection" => Ok(leaf(e.limit_privileges_to_course_section)),
                "section" => optional(w.sections.get(&e.course_section_id).map(Obj::Section)),
                "user" => optional(w.user(e.user_id).map(Obj::User)),
                "course" => optional(w.courses.get(&e.course_id).map(Obj::Course)),
                "createdAt" => Ok(time(&e.created_at)),
                "updatedAt" => Ok(time(&e.updated_at)),
                _ => unknown(),
            },
            Obj::User(u) => match field {
                "_id" => Ok(leaf(r.id_text(u.id))),
                "id" => Ok(leaf(relay_id("User", &r.id_text(u.id)))),
                "name" => Ok(leaf(u.name.clone())),
                "shortName" => Ok(leaf(u.short_name.clone())),
                "sortableName" => Ok(leaf(u.sortable_name.clone())),
                "sisId" => Ok(Out::Leaf(u.sis_user_id.clone().into())),
                "loginId" => Ok(Out::Leaf(u.login_id.clone().into())),
                "createdAt" => Ok(time(&u.created_at)),
                "updatedAt" => Ok(time(&u.updated_at)),
                _ => unknown(),
            },
            Obj::Module(m) => match field {
                "_id" => Ok(leaf(r.id_text(m.id))),
                "id" => Ok(leaf(relay_id("Module", &r.id_text(m.id)))),
                "name" => Ok(leaf(m.name.clone())),
                "position" => Ok(leaf(m.position)),
                "published" => Ok(leaf(m.published())),
                "createdAt" => Ok(time(&m.created_at)),
                "updatedAt" => Ok(time(&m.updated_at)),
                _ => unknown(),
            },
            Obj::Connection {
                edge, edges, info, ..
            } => match field {
                "nodes" => Ok(Out::Many(edges.iter().map(|(o, _)| o.clone()).collect())),
                "edges" => Ok(Out::Many(
                    edges
                        .iter()
                        .map(|(o, c)| Obj::Edge {
                            ty: edge,
                            node: Box::new(o.clone()),
                            cursor: c.clone(),
                        })
                        .collect(),
                )),
                "pageInfo" => Ok(Out::One(Obj::PageInfo(info.clone()))),
                _ => unknown(),
            },
            Obj::Edge { node, cursor, .. } => match field {
                "cursor" => Ok(leaf(cursor.clone())),
                "node" => Ok(Out::One((**node).clone())),
                _ => unknown(),
            },
            Obj::PageInfo(info) => match field {
                "startCursor" => Ok(Out::Leaf(info.start.clone().into())),
                "endCursor" => Ok(Out::Leaf(info.end.clone().into())),
                "hasNextPage" => Ok(leaf(info.has_next)),
                "hasPreviousPage" => Ok(leaf(info.has_previous)),
                _ => unknown(),
            },
        }
    }
}

/// One GraphQL request as posted.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct GqlRequest {
    pub(crate) query: Option<String>,
    pub(crate) variables: Map<String, Value>,
    pub(crate) operation_name: Option<String>,
}

fn errors_only(errors: Vec<Value>) -> Value {
    json!({ "errors": errors })
}

/// Runs a request against the world: the response body and how many nodes it returned.
pub(crate) fn execute(
    world: &World,
    index: &CourseIndex,
    render: &Render,
    request: &GqlRequest,
) -> (Value, usize) {
    let Some(query) = request.query.as_deref().filter(|q| !q.trim().is_empty()) else {
        return (
            errors_only(vec![json!({ "message": "No query string was present" })]),
            0,
        );
    };
    let operations = match parse(query) {
        Ok(ops) => ops,
        Err(error) => return (errors_only(vec![error.json()]), 0),
    };
    let op = match &request.operation_name {
        Some(name) => operations
            .iter()
            .find(|o| o.name.as_deref() == Some(name.as_str())),
        None if operations.len() == 1 => operations.first(),
        None => {
            return (
                errors_only(vec![json!({
                    "message": "An operation name is required when the document has several operations"
                })]),
                0,
            );
        }
    };
    let Some(op) = op else {
        let name = request.operation_name.clone().unwrap_or_default();
        return (
            errors_only(vec![
                json!({ "message": format!("No operation named \"{name}\"") }),
            ]),
            0,
        );
    };
    if op.kind == OpKind::Subscription {
        return (
            errors_only(vec![
                GqlError::at("Subscriptions are not supported", op.pos).json(),
            ]),
            0,
        );
    }
    let root = if op.kind == OpKind::Mutation {
        "Mutation"
    } else {
        "Query"
    };
    let mut validator = Validator {
        op,
        declared: op.vars.iter().map(|v| (v.name.as_str(), v)).collect(),
        used: HashSet::new(),
        errors: Vec::new(),
    };
    for var in &op.vars {
        if !is_input(var.ty.base()) {
            validator.error(
                format!(
                    "{} isn't a valid input type (on ${})",
                    var.ty.text(),
                    var.name
                ),
                var.pos,
                &[op.label()],
            );
        }
    }
    let mut path = vec![op.label()];
    validator.fields(root, &op.selection, &mut path);
    for var in &op.vars {
        if !validator.used.contains(var.name.as_str()) {
            validator.error(
                format!(
                    "Variable ${} is declared by {} but not used",
                    var.name,
                    op.label()
                ),
                var.pos,
                &[op.label()],
            );
        }
    }
    if !validator.errors.is_empty() {
        return (errors_only(validator.errors), 0);
    }
    let mut vars = Map::new();
    let mut errors = Vec::new();
    for def in &op.vars {
        let provided = request.variables.get(&def.name).cloned().or_else(|| {
            def.default
                .as_ref()
                .and_then(|d| substitute(d, &Map::new()))
        });
        match provided {
            Some(value) => match coerce(&value, &def.ty) {
                Ok(value) => {
                    vars.insert(def.name.clone(), value);
                }
                Err(problem) => errors.push(json!({
                    "message": format!("Variable ${} of type {} was provided invalid value", def.name, def.ty.text()),
                    "locations": [def.pos.json()],
                    "extensions": { "value": value, "problems": [{ "path": [], "explanation": problem }] },
                })),
            },
            None if matches!(def.ty, TypeRef::NonNull(_)) => errors.push(json!({
                "message": format!("Variable ${} of type {} was provided invalid value", def.name, def.ty.text()),
                "locations": [def.pos.json()],
                "extensions": { "value": null, "problems": [{ "path": [], "explanation": "Expected value to not be null" }] },
            })),
            None => {}
        }
    }
    if !errors.is_empty() {
        return (errors_only(errors), 0);
    }
    let mut exec = Exec {
        world,
        index,
        render,
        vars: &vars,
        errors: Vec::new(),
        nodes: 0,
    };
    let root_obj = if op.kind == OpKind::Mutation {
        Obj::Mutation
    } else {
        Obj::Query
    };
    let data = exec.object(&root_obj, &op.selection, &mut Vec::new());
    let mut response = json!({ "data": data });
    if !exec.errors.is_empty() {
        response["errors"] = Value::Array(exec.errors);
    }
    (response, exec.nodes)
}

/// Reads a request from a JSON body (or form parameters, which Canvas's controller also
/// takes); `variables` may be an object or a JSON string.
fn read_request(headers: &HeaderMap, body: &[u8]) -> Result<GqlRequest, ApiError> {
    let is_form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("x-www-form-urlencoded"));
    let value: Value = if is_form {
        let params = Params::parse(&String::from_utf8_lossy(body));
        json!({
            "query": params.get("query"),
            "variables": params.get("variables"),
            "operationName": params.get("operationName"),
        })
    } else {
        serde_json::from_slice(body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                format!("the body is not a JSON GraphQL request: {e}"),
            )
        })?
    };
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "the body must be one GraphQL request object (batches are not supported)",
        ));
    }
    let variables = match &value["variables"] {
        Value::Object(map) => map.clone(),
        Value::String(text) if !text.trim().is_empty() => {
            match serde_json::from_str::<Value>(text) {
                Ok(Value::Object(map)) => map,
                Ok(Value::Null) => Map::new(),
                _ => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "variables must be a JSON object",
                    ));
                }
            }
        }
        Value::Null | Value::String(_) => Map::new(),
        _ => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "variables must be a JSON object",
            ));
        }
    };
    Ok(GqlRequest {
        query: value["query"].as_str().map(str::to_string),
        variables,
        operation_name: value["operationName"].as_str().map(str::to_string),
    })
}

/// `POST /api/graphql`.
pub(crate) async fn handler(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = match read_request(&headers, &body) {
        Ok(request) => request,
        Err(error) => return error.into_response(),
    };
    let render = Render::new(&app, &headers);
    let (value, nodes) = {
        let world = lock(&app.world);
        let index = app.index(&world);
        execute(&world, &index, &render, &request)
    };
    json_response(&value, nodes, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_operations_variables_aliases_and_literals() {
        let ops = parse(
            r#"
            # a comment
            query Roster($id: ID!, $n: Int = 5, $states: [EnrollmentWorkflowState!]) {
              c: course(id: $id) {
                enrollmentsConnection(first: $n, filter: {states: $states, types: [StudentEnrollment]}) {
                  nodes { _id state }
                }
                x: name @skip(if: false)
              }
            }
            { course(sisId: "S\"1\u0041", id: null) { name } }
            "#,
        )
        .expect("parse");
        assert_eq!(ops.len(), 2);
        let op = &ops[0];
        assert_eq!(op.name.as_deref(), Some("Roster"));
        assert_eq!(op.vars.len(), 3);
        assert_eq!(
            op.vars[0].ty,
            TypeRef::NonNull(Box::new(TypeRef::Named("ID".into())))
        );
        assert_eq!(op.vars[1].default, Some(Ast::Int(5)));
        let course = &op.selection[0];
        assert_eq!(
            (course.alias.as_deref(), course.name.as_str()),
            (Some("c"), "course")
        );
        assert_eq!(
            course.pos,
            Pos {
                line: 4,
                column: 15
            }
        );
        assert_eq!(ops[1].selection[0].args[0].value, Ast::Str("S\"1A".into()));
    }

    #[test]
    fn syntax_errors_and_fragments_are_reported_with_locations() {
        let error = parse("{ course(id: 1) { name }").expect_err("unclosed");
        assert!(
            error.message.contains("end of document"),
            "{}",
            error.message
        );
        let error = parse("{ course(id: 1) { ...CourseFields } }").expect_err("fragment");
        assert!(error.message.contains("Fragments"));
        assert_eq!(
            error.pos,
            Some(Pos {
                line: 1,
                column: 19
            })
        );
        assert!(parse("{ a(x: \"open) }").is_err());
        assert!(parse("{ a(x: 1.) }").is_err());
    }

    #[test]
    fn relay_slicing_follows_after_before_first_last() {
        let items = || -> Vec<Obj<'static>> { (0..5).map(|_| Obj::Query).collect() };
        let args = |v: Value| v.as_object().cloned().unwrap_or_default();
        let page = |a: Value| match connection("C", "E", "f", items(), &args(a)).expect("page") {
            Obj::Connection { edges, info, .. } => (
                edges
                    .into_iter()
                    .map(|(_, c)| decode_cursor(&c).expect("c"))
                    .collect::<Vec<_>>(),
                info.has_next,
                info.has_previous,
            ),
            _ => unreachable!(),
        };
        assert_eq!(page(json!({"first": 2})), (vec![1, 2], true, false));
        assert_eq!(
            page(json!({"first": 2, "after": cursor(2)})),
            (vec![3, 4], true, true)
        );
        assert_eq!(
            page(json!({"first": 2, "after": cursor(4)})),
            (vec![5], false, true)
        );
        assert_eq!(page(json!({"last": 2})), (vec![4, 5], false, true));
        assert_eq!(
            page(json!({"last": 1, "before": cursor(3)})),
            (vec![2], false, true)
        );
        assert!(connection("C", "E", "f", items(), &args(json!({"first": -1}))).is_err());
        assert!(connection("C", "E", "f", items(), &args(json!({"after": "!!"}))).is_err());
    }
}
