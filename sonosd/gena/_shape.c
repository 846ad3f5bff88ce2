/* -*- test-case-name: tests.gena.test_shape -*- */
/* sonosd.gena._shape: the speakers' own event shape, read in C.
 *
 * One function, tree3(document: bytes): a document of at most three levels whose third level
 * holds only text, read into ElementTree's terms (tags and attribute names as "{uri}local",
 * namespace declarations left out of the attributes, references to XML's five predefined
 * entities unescaped), or None.
 *
 * Every NOTIFY body (<e:propertyset>), every LastChange document (<Event> <InstanceID> ...) and
 * every DIDL-Lite value (<DIDL-Lite> <item> ...) a speaker sends has that shape.  Within it,
 * only what needs no judgement of a real XML parser is read; for anything else the answer is
 * None and sonosd.gena.eventxml reads the document with expat and ElementTree as it would
 * without this module, accepting or rejecting it with their errors.  So None is not an error:
 * it means "not for me".  Declined, among others: a comment, a processing instruction (the
 * XML declaration included), CDATA, a DOCTYPE, a character reference or any entity but the
 * five, a carriage return, a tab or a line feed inside an attribute value (a parser
 * normalises them), a name that is not ASCII, an undeclared or reserved prefix, a prefix
 * bound to the namespace of xml or xmlns, a duplicate attribute, text beside elements, a
 * fourth level, bytes that are not UTF-8 or characters XML forbids, anything after the root
 * element but whitespace, more than MAX_NS namespace declarations or MAX_ATTRS attributes
 * on one element.
 *
 * The result: (tag, attributes, children) for the root and each second-level element, where
 * children is a list; (tag, attributes, text) for a third-level element, where text is None
 * when the element is empty (ElementTree's element.text).  tests/gena/test_shape.py holds it
 * to ElementTree's reading of the same documents.
 *
 * The reader makes one pass, never recurses beyond the three levels, never reads past the
 * end of the buffer (every access is checked against `end`) and allocates in proportion to
 * the document: its time and memory are bounded by the document's size.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_NS 32
#define MAX_ATTRS 32
#define MAX_DEPTH 3
#define XML_URI "http://www.w3.org/XML/1998/namespace"
#define XMLNS_URI "http://www.w3.org/2000/xmlns/"

typedef struct {
    const char *prefix; /* NULL for the default namespace */
    Py_ssize_t prefix_len;
    PyObject *brace; /* "{uri}", owned */
    int depth;
} Declaration;

typedef struct {
    const char *name;
    Py_ssize_t name_len;
    Py_ssize_t colon; /* of the name, or -1 */
    const char *value;
    Py_ssize_t value_len;
} RawAttribute;

typedef struct {
    const char *p;
    const char *end;
    Declaration ns[MAX_NS];
    int ns_count;
} Reader;

/* Set by a reader function that returns NULL without a Python error: decline. */
#define DECLINE NULL

static int
is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static int
is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

static void
skip_space(Reader *r)
{
    while (r->p < r->end && is_space(*r->p)) {
        r->p++;
    }
}

/* The end of an NCName (ASCII only) starting at p, or NULL if none starts there. */
static const char *
ncname_end(const char *p, const char *end)
{
    if (p >= end || !is_name_start(*p)) {
        return NULL;
    }
    p++;
    while (p < end && is_name_char(*p)) {
        p++;
    }
    return p;
}

/* A qualified name (NCName, or NCName ":" NCName), ASCII only.  Returns its length, 0 if
 * there is none; *colon is the offset of the colon, or -1. */
static Py_ssize_t
read_name(Reader *r, Py_ssize_t *colon)
{
    const char *start = r->p;
    const char *p = ncname_end(start, r->end);
    *colon = -1;
    if (p == NULL) {
        return 0;
    }
    if (p < r->end && *p == ':') {
        *colon = p - start;
        p = ncname_end(p + 1, r->end);
        if (p == NULL || (p < r->end && *p == ':')) {
            return 0;
        }
    }
    r->p = p;
    return p - start;
}

/* The bytes decode_text must look at: controls, "&", "<", "]" and 0xEF (filled once). */
static unsigned char special[256];

/* Character data or an attribute value: the five predefined references unescaped, decoded
 * from UTF-8.  Declines (NULL, no error) on any other reference, on a character XML forbids
 * (or normalises: a carriage return anywhere, a tab or line feed in an attribute value), on
 * "<" in an attribute value, on "]]>" in text, and on bytes that are not UTF-8. */
static PyObject *
decode_text(const char *p, Py_ssize_t n, int attribute)
{
    Py_ssize_t i = 0;
    int references = 0;
    for (;;) {
        while (i < n && !special[(unsigned char)p[i]]) {
            i++;
        }
        if (i >= n) {
            break;
        }
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20) {
            if (c == '\r' || (c != '\t' && c != '\n') || attribute) {
                return DECLINE;
            }
        }
        else if (c == '&') {
            references = 1;
        }
        else if (c == '<') {
            return DECLINE;
        }
        else if (c == ']') {
            if (!attribute && i + 2 < n && p[i + 1] == ']' && p[i + 2] == '>') {
                return DECLINE;
            }
        }
        else if (i + 2 < n && (unsigned char)p[i + 1] == 0xBF &&
                 ((unsigned char)p[i + 2] == 0xBE || (unsigned char)p[i + 2] == 0xBF)) {
            /* 0xEF: U+FFFE and U+FFFF are not XML characters. */
            return DECLINE;
        }
        i++;
    }
    if (!references) {
        PyObject *text = PyUnicode_DecodeUTF8(p, n, "strict");
        if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
        }
        return text;
    }
    char *out = PyMem_Malloc(n > 0 ? (size_t)n : 1);
    if (out == NULL) {
        return PyErr_NoMemory();
    }
    Py_ssize_t o = 0;
    for (i = 0; i < n;) {
        const char *amp = memchr(p + i, '&', (size_t)(n - i));
        Py_ssize_t run = amp == NULL ? n - i : amp - (p + i);
        memcpy(out + o, p + i, (size_t)run);
        o += run;
        i += run;
        if (i >= n) {
            break;
        }
        const char *rest = p + i + 1;
        Py_ssize_t left = n - i - 1;
#define ENTITY(name, ch)                                                        \
    if (left >= (Py_ssize_t)sizeof(name) - 1 && memcmp(rest, name, sizeof(name) - 1) == 0) { \
        out[o++] = ch;                                                          \
        i += sizeof(name);                                                      \
        continue;                                                               \
    }
        ENTITY("lt;", '<')
        ENTITY("gt;", '>')
        ENTITY("amp;", '&')
        ENTITY("quot;", '"')
        ENTITY("apos;", '\'')
#undef ENTITY
        PyMem_Free(out);
        return DECLINE;
    }
    PyObject *text = PyUnicode_DecodeUTF8(out, o, "strict");
    PyMem_Free(out);
    if (text == NULL && PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
    }
    return text;
}

/* "{uri}" for each namespace seen, kept for the next documents (speakers declare the same
 * few): at most MAX_BRACES, then it starts again (a peer declaring many cannot keep the
 * speakers' own out for good). */
#define MAX_BRACES 64
static PyObject *braces;

/* "{uri}" (a new reference), or NULL with an error set. */
static PyObject *
brace_of(PyObject *uri)
{
    PyObject *brace = PyDict_GetItemWithError(braces, uri);
    if (brace != NULL) {
        return Py_NewRef(brace);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    brace = PyUnicode_FromFormat("{%U}", uri);
    if (brace == NULL) {
        return NULL;
    }
    if (PyDict_GET_SIZE(braces) >= MAX_BRACES) {
        PyDict_Clear(braces);
    }
    if (PyDict_SetItem(braces, uri, brace) < 0) {
        Py_CLEAR(brace);
    }
    return brace;
}

/* The declaration in scope of a prefix (or the default, prefix NULL), or NULL. */
static Declaration *
lookup(Reader *r, const char *prefix, Py_ssize_t prefix_len)
{
    for (int i = r->ns_count - 1; i >= 0; i--) {
        Declaration *d = &r->ns[i];
        if (prefix == NULL) {
            if (d->prefix == NULL) {
                return d;
            }
        }
        else if (d->prefix != NULL && d->prefix_len == prefix_len &&
                 memcmp(d->prefix, prefix, (size_t)prefix_len) == 0) {
            return d;
        }
    }
    return NULL;
}

static void
pop_declarations(Reader *r, int depth)
{
    while (r->ns_count > 0 && r->ns[r->ns_count - 1].depth >= depth) {
        r->ns_count--;
        Py_CLEAR(r->ns[r->ns_count].brace);
    }
}

static int
is_reserved(const char *prefix, Py_ssize_t len)
{
    return len >= 3 && (prefix[0] == 'x' || prefix[0] == 'X') &&
           (prefix[1] == 'm' || prefix[1] == 'M') && (prefix[2] == 'l' || prefix[2] == 'L');
}

/* "{uri}local" (or "local" with no namespace) for a name in scope.  NULL and no error:
 * decline (an undeclared or reserved prefix). */
static PyObject *
expanded(Reader *r, const char *name, Py_ssize_t len, Py_ssize_t colon, int attribute)
{
    Declaration *declared;
    const char *local = name;
    Py_ssize_t local_len = len;
    if (colon >= 0) {
        if (is_reserved(name, colon)) {
            return DECLINE;
        }
        declared = lookup(r, name, colon);
        if (declared == NULL) {
            return DECLINE;
        }
        local = name + colon + 1;
        local_len = len - colon - 1;
    }
    else {
        declared = attribute ? NULL : lookup(r, NULL, 0);
    }
    if (declared == NULL) {
        return PyUnicode_FromStringAndSize(local, local_len);
    }
    PyObject *tail = PyUnicode_FromStringAndSize(local, local_len);
    if (tail == NULL) {
        return NULL;
    }
    PyObject *result = PyUnicode_Concat(declared->brace, tail);
    Py_DECREF(tail);
    return result;
}

/* One element, its "<" already read.  Returns a new reference, or NULL: an error if one is
 * set, else decline. */
static PyObject *
read_element(Reader *r, int depth)
{
    Py_ssize_t colon;
    const char *name = r->p;
    Py_ssize_t name_len = read_name(r, &colon);
    if (name_len == 0) {
        return DECLINE;
    }
    RawAttribute raw[MAX_ATTRS];
    int count = 0;
    int empty = 0;
    for (;;) {
        const char *before = r->p;
        skip_space(r);
        if (r->p >= r->end) {
            return DECLINE;
        }
        if (*r->p == '>') {
            r->p++;
            break;
        }
        if (*r->p == '/') {
            if (r->p + 1 >= r->end || r->p[1] != '>') {
                return DECLINE;
            }
            r->p += 2;
            empty = 1;
            break;
        }
        if (r->p == before || count == MAX_ATTRS) {
            /* No space before the attribute, or too many of them. */
            return DECLINE;
        }
        raw[count].name = r->p;
        raw[count].name_len = read_name(r, &raw[count].colon);
        if (raw[count].name_len == 0) {
            return DECLINE;
        }
        skip_space(r);
        if (r->p >= r->end || *r->p != '=') {
            return DECLINE;
        }
        r->p++;
        skip_space(r);
        if (r->p >= r->end || (*r->p != '"' && *r->p != '\'')) {
            return DECLINE;
        }
        char quote = *r->p++;
        const char *value = r->p;
        const char *close = memchr(value, quote, (size_t)(r->end - value));
        if (close == NULL) {
            return DECLINE;
        }
        raw[count].value = value;
        raw[count].value_len = close - value;
        r->p = close + 1;
        count++;
    }

    /* Namespace declarations first: they apply to the whole tag. */
    int declared_here = r->ns_count;
    PyObject *result = NULL;
    PyObject *attributes = NULL;
    PyObject *tag = NULL;
    PyObject *content = NULL;
    for (int i = 0; i < count; i++) {
        RawAttribute *a = &raw[i];
        const char *prefix;
        Py_ssize_t prefix_len;
        if (a->name_len == 5 && memcmp(a->name, "xmlns", 5) == 0) {
            prefix = NULL;
            prefix_len = 0;
        }
        else if (a->name_len > 6 && memcmp(a->name, "xmlns:", 6) == 0) {
            prefix = a->name + 6;
            prefix_len = a->name_len - 6;
            if (is_reserved(prefix, prefix_len)) {
                goto decline;
            }
        }
        else {
            continue;
        }
        for (int j = declared_here; j < r->ns_count; j++) {
            Declaration *d = &r->ns[j];
            if ((prefix == NULL) == (d->prefix == NULL) &&
                (prefix == NULL || (d->prefix_len == prefix_len &&
                                    memcmp(d->prefix, prefix, (size_t)prefix_len) == 0))) {
                goto decline; /* declared twice in one tag */
            }
        }
        if (r->ns_count == MAX_NS || a->value_len == 0) {
            /* Too many, or an empty namespace (undeclaring the default, or an error). */
            goto decline;
        }
        PyObject *uri = decode_text(a->value, a->value_len, 1);
        if (uri == NULL) {
            goto fail;
        }
        if (PyUnicode_FindChar(uri, '}', 0, PyUnicode_GET_LENGTH(uri), 1) != -1 ||
            PyUnicode_CompareWithASCIIString(uri, XML_URI) == 0 ||
            PyUnicode_CompareWithASCIIString(uri, XMLNS_URI) == 0) {
            /* ElementTree's "{uri}local" cannot hold a "}"; the namespaces of the reserved
             * prefixes xml and xmlns may be bound to no other prefix (expat refuses it). */
            Py_DECREF(uri);
            goto decline;
        }
        PyObject *brace = brace_of(uri);
        Py_DECREF(uri);
        if (brace == NULL) {
            goto fail;
        }
        Declaration *d = &r->ns[r->ns_count++];
        d->prefix = prefix;
        d->prefix_len = prefix_len;
        d->brace = brace;
        d->depth = depth;
    }

    tag = expanded(r, name, name_len, colon, 0);
    if (tag == NULL) {
        goto fail;
    }
    attributes = PyDict_New();
    if (attributes == NULL) {
        goto fail;
    }
    for (int i = 0; i < count; i++) {
        RawAttribute *a = &raw[i];
        if ((a->name_len == 5 && memcmp(a->name, "xmlns", 5) == 0) ||
            (a->name_len > 6 && memcmp(a->name, "xmlns:", 6) == 0)) {
            continue;
        }
        PyObject *key = expanded(r, a->name, a->name_len, a->colon, 1);
        if (key == NULL) {
            goto fail;
        }
        int known = PyDict_Contains(attributes, key);
        if (known != 0) {
            Py_DECREF(key);
            if (known < 0) {
                goto fail;
            }
            goto decline; /* a duplicate attribute */
        }
        PyObject *value = decode_text(a->value, a->value_len, 1);
        if (value == NULL) {
            Py_DECREF(key);
            goto fail;
        }
        int stored = PyDict_SetItem(attributes, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (stored < 0) {
            goto fail;
        }
    }

    if (depth == MAX_DEPTH) {
        if (empty) {
            content = Py_NewRef(Py_None);
        }
        else {
            const char *text = r->p;
            const char *stop = memchr(text, '<', (size_t)(r->end - text));
            if (stop == NULL || stop + 1 >= r->end || stop[1] != '/') {
                goto decline; /* no end, or a fourth level, a comment, CDATA... */
            }
            if (stop == text) {
                content = Py_NewRef(Py_None);
            }
            else {
                content = decode_text(text, stop - text, 0);
                if (content == NULL) {
                    goto fail;
                }
            }
            r->p = stop;
        }
    }
    else {
        content = PyList_New(0);
        if (content == NULL) {
            goto fail;
        }
        while (!empty) {
            skip_space(r);
            if (r->p >= r->end || *r->p != '<') {
                goto decline; /* text beside elements, or no end */
            }
            if (r->p + 1 < r->end && r->p[1] == '/') {
                break;
            }
            r->p++;
            PyObject *child = read_element(r, depth + 1);
            if (child == NULL) {
                goto fail;
            }
            int appended = PyList_Append(content, child);
            Py_DECREF(child);
            if (appended < 0) {
                goto fail;
            }
        }
    }
    if (!empty) {
        /* The end tag: "</" the same name, maybe spaces, ">". */
        r->p += 2;
        if (r->end - r->p < name_len || memcmp(r->p, name, (size_t)name_len) != 0) {
            goto decline;
        }
        r->p += name_len;
        skip_space(r);
        if (r->p >= r->end || *r->p != '>') {
            goto decline;
        }
        r->p++;
    }
    result = PyTuple_Pack(3, tag, attributes, content);
    goto done;

decline:
fail:
    /* NULL either way: with an error set it is an error, without one a decline. */
done:
    Py_XDECREF(tag);
    Py_XDECREF(attributes);
    Py_XDECREF(content);
    pop_declarations(r, depth);
    return result;
}

static PyObject *
tree3(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    Reader reader;
    reader.p = view.buf;
    reader.end = (const char *)view.buf + view.len;
    reader.ns_count = 0;
    PyObject *root = NULL;
    skip_space(&reader);
    if (reader.p < reader.end && *reader.p == '<') {
        reader.p++;
        root = read_element(&reader, 1);
        if (root != NULL) {
            skip_space(&reader);
            if (reader.p != reader.end) {
                Py_CLEAR(root); /* something after the root element */
            }
        }
    }
    pop_declarations(&reader, 0);
    PyBuffer_Release(&view);
    if (root == NULL && !PyErr_Occurred()) {
        Py_RETURN_NONE;
    }
    return root;
}

PyDoc_STRVAR(tree3_doc,
"tree3(document: bytes) -> tuple | None\n\n"
"A document of at most three levels whose third level holds only text, as ElementTree\n"
"reads it: (tag, attributes, children) for the first two levels, (tag, attributes, text)\n"
"for the third; None for any other document (see the module's source).");

static PyMethodDef methods[] = {
    {"tree3", tree3, METH_O, tree3_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "sonosd.gena._shape",
    .m_doc = "The speakers' own event shape, read in C (sonosd/gena/_shape.c).",
    .m_size = 0,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__shape(void)
{
    braces = PyDict_New();
    if (braces == NULL) {
        return NULL;
    }
    for (int c = 0; c < 0x20; c++) {
        special[c] = 1;
    }
    special['&'] = special['<'] = special[']'] = special[0xEF] = 1;
    PyObject *created = PyModule_Create(&module);
    if (created == NULL || PyModule_AddIntConstant(created, "MAX_NS", MAX_NS) < 0 ||
        PyModule_AddIntConstant(created, "MAX_ATTRS", MAX_ATTRS) < 0 ||
        PyModule_AddIntConstant(created, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_XDECREF(created);
        return NULL;
    }
    return created;
}
