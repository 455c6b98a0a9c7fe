//! Procedural macros for Spate: `#[kafka_listener(...)]`, `#[send_to("topic")]`, `#[retryable_topic(...)]`,
//! `#[dlt_handler]` and `#[spate::main]`.
//!
//! `#[kafka_listener]` keeps the handler function as written (it can still be called directly in unit tests) and
//! adds, under the same name in the type namespace, a struct whose `definition()` builds the
//! `spate::ListenerDefinition`, registered with `inventory` so `spate::App` finds it. Mistakes that can be seen in
//! the signature are compile errors pointing at the mistake; argument types are checked through the
//! `FromRecord` / `FromBatch` traits, so an unsupported type is an error at that argument.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::Parser;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, FnArg, ItemFn, Lit, LitStr, ReturnType, Type};

/// Turns an async fn into a Kafka listener. See the `spate` crate documentation for attributes and arguments.
#[proc_macro_attribute]
pub fn kafka_listener(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_listener(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

/// Sends a listener's return value to a topic. Must be written below `#[kafka_listener(...)]`, which consumes it.
#[proc_macro_attribute]
pub fn send_to(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: TokenStream2 = item.into();
    let err = syn::Error::new(
        Span::call_site(),
        "#[send_to] must be placed below #[kafka_listener(...)] on the same function",
    )
    .to_compile_error();
    quote!(#err #item2).into()
}

/// Runs a Spate application: `async fn main() -> spate::App` (or `Result<spate::App, E>`) builds it; the macro
/// sets up logging and a multi-threaded tokio runtime, runs the app and stops it gracefully on SIGINT/SIGTERM.
#[proc_macro_attribute]
pub fn main(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_main(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_main(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(attr.span(), "#[spate::main] takes no arguments"));
    }
    let f: ItemFn = syn::parse2(item)?;
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(f.sig.fn_token.span(), "#[spate::main] needs an `async fn`"));
    }
    if !f.sig.inputs.is_empty() {
        return Err(syn::Error::new(f.sig.inputs.span(), "#[spate::main] functions take no arguments"));
    }
    let attrs = &f.attrs;
    let vis = &f.vis;
    let name = &f.sig.ident;
    let body = &f.block;
    let ret = match &f.sig.output {
        ReturnType::Default => {
            return Err(syn::Error::new(
                f.sig.ident.span(),
                "#[spate::main] functions return the application: `-> spate::App` (or `Result<spate::App, E>`)",
            ))
        }
        ReturnType::Type(_, t) => t.clone(),
    };
    Ok(quote! {
        #(#attrs)*
        #vis fn #name() -> ::std::process::ExitCode {
            ::spate::__private::run_main(async move { let __app: #ret = #body; __app })
        }
    })
}

#[derive(Default)]
struct Attrs {
    topics: Option<(Span, Vec<Expr>)>,
    topic_pattern: Option<(Span, LitStr)>,
    topic_partitions: Option<(Span, Vec<LitStr>)>,
    id: Option<LitStr>,
    group_id: Option<LitStr>,
    concurrency: Option<LitStr>,
    key_concurrency: Option<LitStr>,
    auto_startup: Option<LitStr>,
    batch: Option<(Span, bool)>,
    ack_mode: Option<(Span, String)>,
    ordering: Option<(Span, String)>,
    properties: Vec<LitStr>,
    client_id_prefix: Option<LitStr>,
    filter: Option<syn::Path>,
    error_handler: Option<syn::Path>,
    cluster: Option<LitStr>,
}

const KNOWN: &str = "topics, topic_pattern, topic_partitions, id, group_id, concurrency, auto_startup, batch, \
                     ack_mode, ordering, key_concurrency, properties, client_id_prefix, filter, error_handler, cluster";

fn lit_str(e: &Expr, what: &str) -> syn::Result<LitStr> {
    match e {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.clone()),
        _ => Err(syn::Error::new(e.span(), format!("`{what}` expects a string literal"))),
    }
}

/// A number, bool or string literal, as text (strings may hold `${...}` placeholders).
fn lit_text(e: &Expr, what: &str) -> syn::Result<LitStr> {
    match e {
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => Ok(s.clone()),
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => Ok(LitStr::new(i.base10_digits(), i.span())),
        Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => Ok(LitStr::new(&b.value.to_string(), b.span)),
        _ => Err(syn::Error::new(e.span(), format!("`{what}` expects a literal or a \"${{config.key}}\" string"))),
    }
}

fn list(e: &Expr) -> Vec<Expr> {
    match e {
        Expr::Array(a) => a.elems.iter().cloned().collect(),
        other => vec![other.clone()],
    }
}

fn path_of(e: &Expr, what: &str) -> syn::Result<syn::Path> {
    match e {
        Expr::Path(p) => Ok(p.path.clone()),
        Expr::Lit(ExprLit { lit: Lit::Str(s), .. }) => s.parse(),
        _ => Err(syn::Error::new(e.span(), format!("`{what}` expects a path to a function"))),
    }
}

fn parse_attrs(attr: TokenStream2) -> syn::Result<Attrs> {
    let mut a = Attrs::default();
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .ok_or_else(|| meta.error(format!("unknown attribute; expected one of: {KNOWN}")))?;
        let span = meta.path.span();
        let value: Expr = meta.value()?.parse()?;
        match key.as_str() {
            "topics" => a.topics = Some((span, list(&value))),
            "topic_pattern" => a.topic_pattern = Some((span, lit_str(&value, "topic_pattern")?)),
            "topic_partitions" => {
                let v = list(&value).iter().map(|e| lit_str(e, "topic_partitions")).collect::<syn::Result<_>>()?;
                a.topic_partitions = Some((span, v));
            }
            "id" => a.id = Some(lit_str(&value, "id")?),
            "group_id" => a.group_id = Some(lit_str(&value, "group_id")?),
            "concurrency" => a.concurrency = Some(lit_text(&value, "concurrency")?),
            "key_concurrency" => a.key_concurrency = Some(lit_text(&value, "key_concurrency")?),
            "auto_startup" => a.auto_startup = Some(lit_text(&value, "auto_startup")?),
            "batch" => match &value {
                Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => a.batch = Some((value.span(), b.value)),
                _ => return Err(syn::Error::new(value.span(), "`batch` expects `true` or `false`")),
            },
            "ack_mode" => {
                let s = match &value {
                    Expr::Path(p) if p.path.get_ident().is_some() => {
                        p.path.get_ident().map(|i| i.to_string()).unwrap_or_default()
                    }
                    _ => lit_str(&value, "ack_mode")?.value(),
                };
                let norm = s.to_ascii_lowercase().replace('-', "_");
                let norm = match norm.as_str() {
                    "countime" | "counttime" => "count_time".to_string(),
                    "manualimmediate" => "manual_immediate".to_string(),
                    _ => norm,
                };
                if !["record", "batch", "time", "count", "count_time", "manual", "manual_immediate"]
                    .contains(&norm.as_str())
                {
                    return Err(syn::Error::new(
                        value.span(),
                        "unknown ack_mode; expected one of: record, batch, time, count, count_time, manual, manual_immediate",
                    ));
                }
                a.ack_mode = Some((value.span(), norm));
            }
            "ordering" => {
                let s = lit_str(&value, "ordering")?.value();
                if s != "partition" && s != "key" {
                    return Err(syn::Error::new(value.span(), "`ordering` is \"partition\" or \"key\""));
                }
                a.ordering = Some((value.span(), s));
            }
            "properties" => {
                for e in list(&value) {
                    let s = lit_str(&e, "properties")?;
                    if !s.value().contains('=') {
                        return Err(syn::Error::new(s.span(), "a property is written \"key=value\""));
                    }
                    a.properties.push(s);
                }
            }
            "client_id_prefix" => a.client_id_prefix = Some(lit_str(&value, "client_id_prefix")?),
            "filter" => a.filter = Some(path_of(&value, "filter")?),
            "error_handler" => a.error_handler = Some(path_of(&value, "error_handler")?),
            "cluster" => a.cluster = Some(lit_str(&value, "cluster")?),
            other => {
                return Err(syn::Error::new(span, format!("unknown attribute `{other}`; expected one of: {KNOWN}")))
            }
        }
        Ok(())
    });
    parser.parse2(attr)?;
    Ok(a)
}

/// The last path segment of a type, e.g. `Ack` for `spate::Ack`.
fn type_name(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        Type::Reference(r) => type_name(&r.elem),
        _ => None,
    }
}

fn expand_listener(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    let a = parse_attrs(attr)?;
    let mut f: ItemFn = syn::parse2(item)?;

    // #[send_to("topic")] and #[retryable_topic(...)] below us.
    let mut send_to: Option<LitStr> = None;
    let mut retryable: Option<syn::Attribute> = None;
    let mut kept = Vec::new();
    for at in f.attrs.drain(..) {
        if at.path().segments.last().map(|s| s.ident == "send_to").unwrap_or(false) {
            send_to = Some(at.parse_args::<LitStr>()?);
        } else if at.path().segments.last().map(|s| s.ident == "retryable_topic").unwrap_or(false) {
            retryable = Some(at);
        } else {
            kept.push(at);
        }
    }
    f.attrs = kept;

    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(f.sig.fn_token.span(), "a #[kafka_listener] must be an `async fn`"));
    }
    if !f.sig.generics.params.is_empty() {
        return Err(syn::Error::new(f.sig.generics.span(), "a #[kafka_listener] cannot be generic"));
    }

    // Where records come from: exactly one of topics / topic_pattern / topic_partitions.
    let sources: Vec<(&str, Span)> = [
        a.topics.as_ref().map(|(s, _)| ("topics", *s)),
        a.topic_pattern.as_ref().map(|(s, _)| ("topic_pattern", *s)),
        a.topic_partitions.as_ref().map(|(s, _)| ("topic_partitions", *s)),
    ]
    .into_iter()
    .flatten()
    .collect();
    if sources.len() > 1 {
        return Err(syn::Error::new(
            sources[1].1,
            format!("`{}` cannot be combined with `{}`: a listener reads either named topics, a pattern, or explicit partitions", sources[1].0, sources[0].0),
        ));
    }
    if sources.is_empty() {
        return Err(syn::Error::new(
            Span::call_site(),
            "#[kafka_listener] needs `topics = \"...\"`, `topic_pattern = \"...\"` or `topic_partitions = [...]`",
        ));
    }

    let batch = a.batch.map(|(_, b)| b).unwrap_or(false);
    let manual = matches!(a.ack_mode.as_ref().map(|(_, m)| m.as_str()), Some("manual" | "manual_immediate"));

    let name = f.sig.ident.clone();
    let vis = f.vis.clone();
    let mut extracts = Vec::new();
    let mut arg_names = Vec::new();
    let mut state_types = Vec::new();
    let mut topic_checks = Vec::new();
    let mut uses_ack = false;
    // Whether any argument reads headers, from each extractor's `READS_HEADERS` (a constant expression).
    let mut header_reads = Vec::new();
    let topic_consts: Vec<&Expr> = match &a.topics {
        Some((_, ts)) => ts.iter().filter(|e| !matches!(e, Expr::Lit(_))).collect(),
        None => Vec::new(),
    };
    for (i, input) in f.sig.inputs.iter().enumerate() {
        let pt = match input {
            FnArg::Receiver(r) => {
                return Err(syn::Error::new(r.span(), "a #[kafka_listener] is a free function, not a method"))
            }
            FnArg::Typed(pt) => pt,
        };
        let ty = &*pt.ty;
        let tname = type_name(ty).unwrap_or_default();
        if tname == "Ack" {
            if !manual {
                return Err(syn::Error::new(
                    ty.span(),
                    "`Ack` is only available with ack_mode = \"manual\" or \"manual_immediate\"; with other ack modes the container commits for you",
                ));
            }
            uses_ack = true;
        }
        if batch && matches!(tname.as_str(), "Meta" | "Key" | "Headers" | "Record") {
            return Err(syn::Error::new(
                ty.span(),
                format!("`{tname}` is per-record metadata and cannot be an argument of a batch listener; take `Batch<T>` or `Vec<Record>` and read it from each record"),
            ));
        }
        if tname == "State" {
            if let Type::Path(p) = ty {
                if let Some(syn::PathArguments::AngleBracketed(args)) = p.path.segments.last().map(|s| &s.arguments) {
                    if let Some(syn::GenericArgument::Type(inner)) = args.args.first() {
                        state_types.push(inner.clone());
                    }
                }
            }
        }
        let var = format_ident!("__spate_arg{}", i);
        let (extract, reads) = if batch {
            (
                quote_spanned! {ty.span()=> let #var = <#ty as ::spate::FromBatch>::from_batch(__records, __ctx)?; },
                quote_spanned! {ty.span()=> <#ty as ::spate::FromBatch>::READS_HEADERS },
            )
        } else {
            (
                quote_spanned! {ty.span()=> let #var = <#ty as ::spate::FromRecord>::from_record(__record, __ctx)?; },
                quote_spanned! {ty.span()=> <#ty as ::spate::FromRecord>::READS_HEADERS },
            )
        };
        header_reads.push(reads);
        extracts.push(extract);
        arg_names.push(var);
        for t in &topic_consts {
            topic_checks.push(quote_spanned! {ty.span()=> ::spate::__private::assert_fits_topic::<_, _, #ty>(&#t); });
        }
    }
    if manual && !uses_ack {
        let span = a.ack_mode.as_ref().map(|(s, _)| *s).unwrap_or_else(Span::call_site);
        return Err(syn::Error::new(
            span,
            "a manual ack mode needs an `Ack` argument, otherwise no record would ever be committed",
        ));
    }

    let finish = match (&send_to, &f.sig.output) {
        (Some(_), ReturnType::Default) => {
            return Err(syn::Error::new(
                f.sig.ident.span(),
                "#[send_to] needs the listener to return the value to send",
            ))
        }
        (Some(_), ReturnType::Type(_, t)) => quote_spanned! {t.span()=> ::spate::IntoReply::into_reply(__result) },
        (None, ReturnType::Type(_, t)) => quote_spanned! {t.span()=> ::spate::IntoOutcome::into_outcome(__result) },
        (None, ReturnType::Default) => quote! { ::spate::IntoOutcome::into_outcome(__result) },
    };
    let parts = if batch {
        quote! { let (__records, __ctx) = __delivery.batch_parts()?; }
    } else {
        quote! { let (__record, __ctx) = __delivery.record_parts()?; }
    };

    // The builder calls.
    let id_value = match &a.id {
        Some(id) => quote!(#id),
        None => {
            let n = name.to_string();
            quote!(#n)
        }
    };
    let mut calls = Vec::new();
    if a.id.is_none() {
        calls.push(quote!(.default_id()));
    }
    if let Some((_, ts)) = &a.topics {
        let names = ts.iter().map(|e| match e {
            Expr::Lit(_) => quote!(::std::string::String::from(#e)),
            other => quote!(::std::string::String::from((#other).name())),
        });
        calls.push(quote!(.topics([#(#names),*])));
    }
    if let Some((_, p)) = &a.topic_pattern {
        calls.push(quote!(.topic_pattern(#p)));
    }
    if let Some((_, ps)) = &a.topic_partitions {
        calls.push(quote!(.topic_partitions([#(#ps),*])));
    }
    if let Some(g) = &a.group_id {
        calls.push(quote!(.group_id(#g)));
    }
    if let Some(c) = &a.concurrency {
        calls.push(quote!(.concurrency(#c)));
    }
    if let Some(c) = &a.key_concurrency {
        calls.push(quote!(.key_concurrency(#c)));
    }
    if let Some(c) = &a.auto_startup {
        calls.push(quote!(.auto_startup(#c)));
    }
    if batch {
        calls.push(quote!(.batch(true)));
    }
    if let Some((_, m)) = &a.ack_mode {
        let v = match m.as_str() {
            "record" => quote!(Record),
            "batch" => quote!(Batch),
            "time" => quote!(Time),
            "count" => quote!(Count),
            "count_time" => quote!(CountTime),
            "manual" => quote!(Manual),
            _ => quote!(ManualImmediate),
        };
        calls.push(quote!(.ack_mode(::spate::AckMode::#v)));
    }
    if let Some((_, o)) = &a.ordering {
        let v = if o == "key" { quote!(Key) } else { quote!(Partition) };
        calls.push(quote!(.ordering(::spate::Ordering::#v)));
    }
    for p in &a.properties {
        calls.push(quote!(.property(#p)));
    }
    if let Some(p) = &a.client_id_prefix {
        calls.push(quote!(.client_id_prefix(#p)));
    }
    if let Some(p) = &a.filter {
        calls.push(quote_spanned!(p.span()=> .filter(#p)));
    }
    if let Some(p) = &a.error_handler {
        calls.push(quote_spanned!(p.span()=> .error_handler(#p())));
    }
    if let Some(c) = &a.cluster {
        calls.push(quote!(.cluster(#c)));
    }
    if let Some(t) = &send_to {
        calls.push(quote!(.send_to(#t)));
    }
    if uses_ack {
        calls.push(quote!(.uses_ack()));
    }
    for t in &state_types {
        calls.push(quote!(.requires_state::<#t>()));
    }
    calls.push(quote!(.reads_headers(false #(|| #header_reads)*)));
    if let Some(at) = &retryable {
        calls.push(retryable_topic_call(at, a.batch, &sources)?);
    }

    let doc =
        format!("The `#[kafka_listener]` registration of [`{name}`]; `{name}::definition()` builds its listener.");
    Ok(quote! {
        #f

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {}

        impl #name {
            /// This listener's definition (to add it to an `App` explicitly, or wrap it in layers).
            #[allow(dead_code)]
            #vis fn definition() -> ::spate::ListenerDefinition {
                #[allow(unreachable_code, unused_variables)]
                fn __spate_checks() {
                    #(#topic_checks)*
                }
                fn __spate_invoke(__delivery: ::spate::Delivery) -> impl ::std::future::Future<
                    Output = ::std::result::Result<::spate::Outcome, ::spate::ListenerError>,
                > + ::std::marker::Send + 'static {
                    async move {
                        #parts
                        #(#extracts)*
                        let __result = #name(#(#arg_names),*).await;
                        #finish
                    }
                }
                ::spate::ListenerDefinition::from_fn(#id_value, __spate_invoke)
                    #(#calls)*
            }
        }

        ::spate::__private::inventory::submit! {
            ::spate::__private::ListenerRegistration { definition: #name::definition, module: ::std::module_path!() }
        }
    })
}

/// Non-blocking retries for a listener; written below `#[kafka_listener(...)]`, which consumes it.
#[proc_macro_attribute]
pub fn retryable_topic(_attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2: TokenStream2 = item.into();
    let err = syn::Error::new(
        Span::call_site(),
        "#[retryable_topic] must be placed below #[kafka_listener(...)] on the same function",
    )
    .to_compile_error();
    quote!(#err #item2).into()
}

const RETRY_KNOWN: &str = "attempts, backoff, dlt_suffix, retry_topic_suffix, auto_create_topics, num_partitions, \
                           replication_factor, topic_suffixing_strategy, exclude, include, dlt_handler, dlt_strategy";

fn lit_int<T: std::str::FromStr>(e: &Expr, what: &str) -> syn::Result<T>
where
    T::Err: std::fmt::Display,
{
    match e {
        Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse(),
        _ => Err(syn::Error::new(e.span(), format!("`{what}` expects an integer literal"))),
    }
}

fn error_kinds(e: &Expr, what: &str) -> syn::Result<Vec<TokenStream2>> {
    let mut out = Vec::new();
    for item in list(e) {
        let s = lit_str(&item, what)?;
        let v = match s.value().as_str() {
            "deserialization" => quote!(Deserialization),
            "extraction" => quote!(Extraction),
            "handler" => quote!(Handler),
            "panic" => quote!(Panic),
            "reply" => quote!(Reply),
            _ => {
                return Err(syn::Error::new(
                    s.span(),
                    "unknown error kind; expected one of: deserialization, extraction, handler, panic, reply",
                ))
            }
        };
        out.push(quote!(::spate::ErrorKind::#v));
    }
    Ok(out)
}

/// The `.retryable_topic(RetryTopicConfiguration...)` call that `#[retryable_topic(...)]` becomes.
fn retryable_topic_call(
    at: &syn::Attribute,
    batch: Option<(Span, bool)>,
    sources: &[(&str, Span)],
) -> syn::Result<TokenStream2> {
    if let Some((span, true)) = batch {
        return Err(syn::Error::new(
            span,
            "#[retryable_topic] needs a record listener: a batch cannot be forwarded record by record to retry topics",
        ));
    }
    if let Some((name, span)) = sources.iter().find(|(n, _)| *n != "topics") {
        return Err(syn::Error::new(
            *span,
            format!("#[retryable_topic] needs named `topics`: retry topics cannot be derived from `{name}`"),
        ));
    }
    let mut calls: Vec<TokenStream2> = Vec::new();
    let mut kinds_seen: Option<&str> = None;
    let (mut dlt_handler, mut no_dlt): (Option<Span>, Option<Span>) = (None, None);
    let tokens = match &at.meta {
        syn::Meta::Path(_) => TokenStream2::new(),
        syn::Meta::List(l) => l.tokens.clone(),
        syn::Meta::NameValue(nv) => {
            return Err(syn::Error::new(nv.span(), "write #[retryable_topic(attempts = 3, ...)]"));
        }
    };
    let parser = syn::meta::parser(|meta| {
        let key = meta
            .path
            .get_ident()
            .map(|i| i.to_string())
            .ok_or_else(|| meta.error(format!("unknown attribute; expected one of: {RETRY_KNOWN}")))?;
        let span = meta.path.span();
        if key == "backoff" {
            let (mut delay, mut multiplier, mut max) = (1000u64, 1.0f64, 0u64);
            meta.parse_nested_meta(|m| {
                let k = m.path.get_ident().map(|i| i.to_string()).unwrap_or_default();
                let v: Expr = m.value()?.parse()?;
                match k.as_str() {
                    "delay_ms" => delay = lit_int(&v, "delay_ms")?,
                    "max_delay_ms" => max = lit_int(&v, "max_delay_ms")?,
                    "multiplier" => {
                        multiplier = match &v {
                            Expr::Lit(ExprLit { lit: Lit::Float(f), .. }) => f.base10_parse()?,
                            Expr::Lit(ExprLit { lit: Lit::Int(i), .. }) => i.base10_parse::<u32>()? as f64,
                            _ => return Err(syn::Error::new(v.span(), "`multiplier` expects a number")),
                        };
                        if multiplier <= 0.0 {
                            return Err(syn::Error::new(v.span(), "`multiplier` must be positive"));
                        }
                    }
                    _ => {
                        return Err(syn::Error::new(
                            m.path.span(),
                            "unknown backoff attribute; expected delay_ms, multiplier, max_delay_ms",
                        ))
                    }
                }
                Ok(())
            })?;
            calls.push(quote!(.back_off(::spate::RetryBackOff::exponential(#delay, #multiplier, #max))));
            return Ok(());
        }
        let value: Expr = meta.value()?.parse()?;
        match key.as_str() {
            "attempts" => {
                let n: u32 = lit_int(&value, "attempts")?;
                if n == 0 {
                    return Err(syn::Error::new(value.span(), "`attempts` counts the first delivery: at least 1"));
                }
                calls.push(quote!(.attempts(#n)));
            }
            "dlt_suffix" => {
                let s = lit_str(&value, "dlt_suffix")?;
                calls.push(quote!(.dlt_suffix(#s)));
            }
            "retry_topic_suffix" => {
                let s = lit_str(&value, "retry_topic_suffix")?;
                calls.push(quote!(.retry_topic_suffix(#s)));
            }
            "auto_create_topics" => match &value {
                Expr::Lit(ExprLit { lit: Lit::Bool(b), .. }) => {
                    let b = b.value;
                    calls.push(quote!(.auto_create_topics(#b)));
                }
                _ => return Err(syn::Error::new(value.span(), "`auto_create_topics` expects `true` or `false`")),
            },
            "num_partitions" => {
                let n: i32 = lit_int(&value, "num_partitions")?;
                calls.push(quote!(.num_partitions(#n)));
            }
            "replication_factor" => {
                let n: i32 = lit_int(&value, "replication_factor")?;
                calls.push(quote!(.replication_factor(#n)));
            }
            "topic_suffixing_strategy" => {
                let s = lit_str(&value, "topic_suffixing_strategy")?;
                let v =
                    match s.value().as_str() {
                        "suffix_with_delay_value" => quote!(SuffixWithDelayValue),
                        "suffix_with_index_value" => quote!(SuffixWithIndexValue),
                        _ => return Err(syn::Error::new(
                            s.span(),
                            "`topic_suffixing_strategy` is \"suffix_with_delay_value\" or \"suffix_with_index_value\"",
                        )),
                    };
                calls.push(quote!(.suffixing_strategy(::spate::TopicSuffixingStrategy::#v)));
            }
            "exclude" | "include" => {
                if let Some(other) = kinds_seen {
                    if other != key {
                        return Err(syn::Error::new(span, "`exclude` and `include` cannot be combined"));
                    }
                }
                kinds_seen = Some(if key == "exclude" { "exclude" } else { "include" });
                let kinds = error_kinds(&value, &key)?;
                let method = format_ident!("{}", key);
                calls.push(quote!(.#method([#(#kinds),*])));
            }
            "dlt_handler" => {
                let p = path_of(&value, "dlt_handler")?;
                dlt_handler = Some(value.span());
                calls.push(quote_spanned!(p.span()=> .dlt_handler(#p::service())));
            }
            "dlt_strategy" => {
                let s = lit_str(&value, "dlt_strategy")?;
                let v = match s.value().as_str() {
                    "always_retry_on_error" => quote!(AlwaysRetryOnError),
                    "fail_on_error" => quote!(FailOnError),
                    "no_dlt" => {
                        no_dlt = Some(s.span());
                        quote!(NoDlt)
                    }
                    _ => {
                        return Err(syn::Error::new(
                            s.span(),
                            "`dlt_strategy` is \"always_retry_on_error\", \"fail_on_error\" or \"no_dlt\"",
                        ))
                    }
                };
                calls.push(quote!(.dlt_strategy(::spate::DltStrategy::#v)));
            }
            other => {
                return Err(syn::Error::new(
                    span,
                    format!("unknown attribute `{other}`; expected one of: {RETRY_KNOWN}"),
                ))
            }
        }
        Ok(())
    });
    parser.parse2(tokens)?;
    if let (Some(_), Some(span)) = (dlt_handler, no_dlt) {
        return Err(syn::Error::new(span, "`dlt_strategy = \"no_dlt\"` leaves no DLT for the `dlt_handler`"));
    }
    Ok(quote!(.retryable_topic(::spate::RetryTopicConfiguration::new() #(#calls)*)))
}

/// Handles the records of a retryable listener's dead-letter topic (Spring's `@DltHandler`): an async fn taking
/// record extractors (payload, `Record`, `Headers`, `Meta`, `spate::DltInfo`, `State<T>`...), named by
/// `#[retryable_topic(dlt_handler = this_fn)]`.
#[proc_macro_attribute]
pub fn dlt_handler(attr: TokenStream, item: TokenStream) -> TokenStream {
    match expand_dlt_handler(attr.into(), item.into()) {
        Ok(t) => t.into(),
        Err(e) => e.to_compile_error().into(),
    }
}

fn expand_dlt_handler(attr: TokenStream2, item: TokenStream2) -> syn::Result<TokenStream2> {
    if !attr.is_empty() {
        return Err(syn::Error::new(
            attr.span(),
            "#[dlt_handler] takes no arguments; name it in #[retryable_topic(dlt_handler = ...)]",
        ));
    }
    let f: ItemFn = syn::parse2(item)?;
    if f.sig.asyncness.is_none() {
        return Err(syn::Error::new(f.sig.fn_token.span(), "a #[dlt_handler] must be an `async fn`"));
    }
    let name = f.sig.ident.clone();
    let vis = f.vis.clone();
    let mut extracts = Vec::new();
    let mut arg_names = Vec::new();
    for (i, input) in f.sig.inputs.iter().enumerate() {
        let FnArg::Typed(pt) = input else {
            return Err(syn::Error::new(input.span(), "a #[dlt_handler] is a free function, not a method"));
        };
        let ty = &*pt.ty;
        if type_name(ty).as_deref() == Some("Ack") {
            return Err(syn::Error::new(ty.span(), "a #[dlt_handler] cannot take `Ack`: its container commits for it"));
        }
        let var = format_ident!("__spate_arg{}", i);
        extracts.push(
            quote_spanned! {ty.span()=> let #var = <#ty as ::spate::FromRecord>::from_record(__record, __ctx)?; },
        );
        arg_names.push(var);
    }
    let finish = match &f.sig.output {
        ReturnType::Type(_, t) => quote_spanned! {t.span()=> ::spate::IntoOutcome::into_outcome(__result) },
        ReturnType::Default => quote! { ::spate::IntoOutcome::into_outcome(__result) },
    };
    let doc = format!("The `#[dlt_handler]` registration of [`{name}`]; `{name}::service()` is its service.");
    Ok(quote! {
        #f

        #[doc = #doc]
        #[allow(non_camel_case_types)]
        #vis struct #name {}

        impl #name {
            /// This DLT handler as a listener service.
            #[allow(dead_code)]
            #vis fn service() -> ::spate::listener::ListenerService {
                fn __spate_invoke(__delivery: ::spate::Delivery) -> impl ::std::future::Future<
                    Output = ::std::result::Result<::spate::Outcome, ::spate::ListenerError>,
                > + ::std::marker::Send + 'static {
                    async move {
                        let (__record, __ctx) = __delivery.record_parts()?;
                        #(#extracts)*
                        let __result = #name(#(#arg_names),*).await;
                        #finish
                    }
                }
                ::spate::listener::ListenerService::from_fn(__spate_invoke)
            }
        }
    })
}
