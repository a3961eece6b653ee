/* Context: `self` inside a task, the lazy proxy to the task's siblings.
 *
 * `self.user` and `self["user"]` only build a Sibling awaitable; nothing is
 * registered until it is awaited, so an awaitable that is never awaited is
 * harmless.  Names starting with "_" are the context's own members
 * (_name, _signal, _end) and go through normal attribute lookup; task names
 * never start with "_", so the two cannot clash.
 */
#ifndef BETTERALL_CONTEXT_H
#define BETTERALL_CONTEXT_H

#include "state.h"

static inline int
context_live(NodeObject *node)
{
    return node->graph != NULL && !node->graph->finished;
}

/* A context whose task ended in its first step, kept by the graph to be
 * `self` of the next task (see context_release), belongs to no task in
 * between: its node is NULL.  Code that finds it through the collector
 * (gc.get_objects(), a memory profiler) sees it as a context whose call has
 * ended.  NULL with RuntimeError set for such a context. */
static inline NodeObject *
context_node(ContextObject *self)
{
    if (self->node == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "this betterall context belongs to no running task (its call has ended)");
    }
    return self->node;
}

/* Drop a reference to a node's `self` (stolen).  When it is the last one
 * (user code kept no `self`, no weak reference to it), the context is not
 * freed but kept as the graph's spare, for the next task that starts: a
 * chain or a diamond in dependency order then makes one context for the
 * whole call instead of one per task, and its spare Sibling with it.  It
 * is detached from its node first, so nothing can tell it was used
 * before. */
static void
context_release(GraphObject *g, PyObject *obj)
{
    ContextObject *ctx = (ContextObject *)obj;
    PyTypeObject *tp = g->bind_context ? g->bind_context : g->mst->ContextType;
    /* Not a class form's `self` whose class has a finalizer (__del__): it
     * is owed one call per task. */
    if (Py_REFCNT(obj) != 1 || g->spare_ctx != NULL || g->finished ||
        !Py_IS_TYPE(obj, tp) || tp->tp_finalize != NULL || ctx->weakreflist != NULL) {
        Py_DECREF(obj);
        return;
    }
    NodeObject *node = ctx->node;
    if (node->proxy == obj) {
        node->proxy = NULL;
    }
    /* Its spare Sibling comes along only if nobody else holds it either;
     * it keeps its old waiter until the next node takes it over. */
    PyObject *spare = ctx->spare;
    if (spare != NULL &&
        (Py_REFCNT(spare) != 1 || ((SiblingObject *)spare)->weakreflist != NULL)) {
        ctx->spare = NULL;
    }
    else {
        spare = NULL;
    }
    ctx->node = NULL;
    g->spare_ctx = obj; /* our reference moves */
    /* The graph keeps every node alive, so this cannot free one. */
    Py_DECREF(node);
    Py_XDECREF(spare);
}

static PyObject *
context_sibling(ContextObject *self, PyObject *name)
{
    NodeObject *node = context_node(self);
    if (node == NULL) {
        return NULL;
    }
    GraphObject *g = node->graph;
    mod_state *st = node->mst;
    if (!context_live(node)) {
        return context_gone(node);
    }
    /* The same sibling as last time (a task awaiting it again, in a loop or
     * a retry), with nobody holding the last awaitable: restart that one,
     * without looking the name up.  Names compare by identity here: both
     * are usually the same interned string. */
    SiblingObject *last = (SiblingObject *)self->spare;
    if (last != NULL && last->target->name == name && Py_REFCNT(last) == 1 &&
        last->weakreflist == NULL && last->callbacks == NULL && last->cancel_msg == NULL) {
        BA_ASSERT(last->state != SIB_BLOCKED && !last->parked && last->waiter == node);
        last->t_wait = 0.0;
        last->state = SIB_INIT;
        last->blocking = 0;
        return Py_NewRef(last);
    }
    PyObject *names = graph_names(g);
    if (names == NULL) {
        return NULL;
    }
    PyObject *target = PyDict_GetItemWithError(names, name);
    if (target == NULL) {
        if (PyErr_Occurred()) {
            return NULL;
        }
        if (!Py_IS_TYPE(self, st->ContextType)) {
            /* The class form: not a task, so an attribute of the graph
             * class or of its inputs.  As with a Python __getattr__, an
             * AttributeError there becomes the unknown-task error. */
            PyObject *attr = PyObject_GenericGetAttr((PyObject *)self, name);
            if (attr != NULL || !PyErr_ExceptionMatches(PyExc_AttributeError)) {
                return attr;
            }
            PyErr_Clear();
        }
        PyObject *err = PyObject_CallMethodObjArgs(st->UnknownTaskError, st->s_for_name,
                                                   name, names, NULL);
        if (err != NULL) {
            ba_raise(err);
            Py_DECREF(err);
        }
        return NULL;
    }
    /* A task awaits one sibling after another, and drops each awaitable
     * once awaited: the context keeps the last one and, when nobody else
     * holds it any more (no waiter list, no gather, no weak reference),
     * makes it the next one instead of allocating. */
    SiblingObject *s = (SiblingObject *)self->spare;
    if (s != NULL && Py_REFCNT(s) == 1 && s->weakreflist == NULL) {
        /* Nobody holds it, so it cannot be registered anywhere.  Its last
         * wait may have counted for another task (sibling_take_awaiter). */
        BA_ASSERT(s->state != SIB_BLOCKED && !s->parked);
        if (s->waiter != node) {
            Py_SETREF(s->waiter, (NodeObject *)Py_NewRef(node));
        }
        sibling_start(s, target);
        return Py_NewRef(s);
    }
    s = PyObject_GC_New(SiblingObject, st->SiblingType);
    if (s == NULL) {
        return NULL;
    }
    BA_LIVE_ADD(st, LIVE_SIBLING, 1);
    s->waiter = (NodeObject *)Py_NewRef(node);
    s->target = NULL;
    s->callbacks = NULL;
    s->cancel_msg = NULL;
    s->weakreflist = NULL;
    sibling_start(s, target);
    PyObject_GC_Track(s);
    Py_XSETREF(self->spare, Py_NewRef(s));
    return (PyObject *)s;
}

static PyObject *
context_getattro(PyObject *self, PyObject *name)
{
    if (PyUnicode_Check(name) && PyUnicode_GET_LENGTH(name) > 0 &&
        PyUnicode_READ_CHAR(name, 0) != '_') {
        return context_sibling((ContextObject *)self, name);
    }
    return PyObject_GenericGetAttr(self, name);
}

static PyObject *
context_subscript(PyObject *self, PyObject *name)
{
    if (!PyUnicode_Check(name)) {
        PyErr_Format(PyExc_TypeError, "task names are str, not %.100s",
                     Py_TYPE(name)->tp_name);
        return NULL;
    }
    return context_sibling((ContextObject *)self, name);
}

static PyObject *
context_get_name(PyObject *self, void *Py_UNUSED(closure))
{
    NodeObject *node = context_node((ContextObject *)self);
    return node == NULL ? NULL : Py_NewRef(node->name);
}


static PyObject *
context_get_signal(PyObject *self, void *Py_UNUSED(closure))
{
    ContextObject *ctx = (ContextObject *)self;
    NodeObject *node = context_node(ctx);
    if (node == NULL) {
        return NULL;
    }
    if (node->graph == NULL) {
        /* The graph is gone: it handed its signal over (see graph_clear),
         * so that a thread polling it after the call still can. */
        if (ctx->signal != NULL) {
            return Py_NewRef(ctx->signal);
        }
        return context_gone(node);
    }
    return graph_get_signal(node->graph);
}

static PyObject *
context_end(PyObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    NodeObject *node = context_node((ContextObject *)self);
    if (node == NULL) {
        return NULL;
    }
    GraphObject *g = node->graph;
    mod_state *st = node->mst;
    PyObject *value;
    if (!context_live(node)) {
        return context_gone(node);
    }
    if (parse_optional(args, nargs, kwnames, 0, "value", 0, &value,
                       "_end() takes one optional argument, value") < 0) {
        return NULL;
    }
    if (value == NULL) {
        value = Py_None;
    }
    if (g->mode != MODE_FLOW) {
        PyErr_Format(PyExc_RuntimeError,
                     "self._end() is only available in betterall.flow(), not in "
                     "betterall.%s(): return the value instead",
                     mode_names[g->mode]);
        return NULL;
    }
    PyObject *end = PyObject_CallOneArg(st->FlowEnd, value);
    if (end == NULL) {
        return NULL;
    }
    if (graph_end(g, node, value, end) < 0) {
        Py_DECREF(end);
        return NULL;
    }
    ba_raise(end);
    Py_DECREF(end);
    return NULL;
}

static PyObject *
context_dir(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    NodeObject *node = ((ContextObject *)self)->node; /* NULL: detached */
    GraphObject *g = node != NULL ? node->graph : NULL;
    PyObject *table = g ? graph_names(g) : NULL;
    if (g != NULL && table == NULL) {
        return NULL;
    }
    PyObject *names = table ? PyDict_Keys(table) : PyList_New(0);
    if (names == NULL) {
        return NULL;
    }
    static const char *const own[] = {"_end", "_name", "_signal"};
    for (size_t i = 0; i < 3; i++) {
        PyObject *s = PyUnicode_FromString(own[i]);
        if (s == NULL || PyList_Append(names, s) < 0) {
            Py_XDECREF(s);
            Py_DECREF(names);
            return NULL;
        }
        Py_DECREF(s);
    }
    return names;
}

static PyObject *
context_repr(PyObject *self)
{
    NodeObject *node = ((ContextObject *)self)->node;
    if (node == NULL) {
        return PyUnicode_FromString("<betterall context of no task (its call has ended)>");
    }
    return PyUnicode_FromFormat("<betterall context of task %R>", node->name);
}

static int
context_traverse(ContextObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->node);
    Py_VISIT(self->signal);
    Py_VISIT(self->spare);
    return 0;
}

static int
context_clear(ContextObject *self)
{
    if (self->node != NULL && self->node->proxy == (PyObject *)self) {
        self->node->proxy = NULL;
    }
    Py_CLEAR(self->node);
    Py_CLEAR(self->signal);
    Py_CLEAR(self->spare);
    return 0;
}

static void
context_dealloc(ContextObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)context_clear(self);
    ba_live_dealloc(tp, LIVE_CONTEXT);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef context_methods[] = {
    {"_end", (PyCFunction)(void (*)(void))context_end, METH_FASTCALL | METH_KEYWORDS,
     "End the flow with value (flow only); never returns."},
    {"__dir__", (PyCFunction)context_dir, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef context_getset[] = {
    {"_name", context_get_name, NULL, "This task's name.", NULL},
    {"_signal", context_get_signal, NULL, "The graph's Signal.", NULL},
    {NULL},
};

static PyMemberDef context_members[] = {
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(ContextObject, weakreflist), Py_READONLY},
    {NULL},
};

static PyType_Slot context_slots[] = {
    {Py_tp_members, context_members},
    {Py_tp_doc, "self in a task: await self.<name> for a sibling's result."},
    {Py_tp_dealloc, context_dealloc},
    {Py_tp_traverse, context_traverse},
    {Py_tp_clear, context_clear},
    {Py_tp_getattro, context_getattro},
    {Py_tp_methods, context_methods},
    {Py_tp_getset, context_getset},
    {Py_tp_repr, context_repr},
    {Py_mp_subscript, context_subscript},
    {0, NULL},
};

static PyType_Spec context_spec = {
    .name = "betterall._cengine.Context",
    .basicsize = sizeof(ContextObject),
    /* BASETYPE: the class form's context types derive from it (and from
     * the graph class), see betterall/_graph.py. */
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION | Py_TPFLAGS_BASETYPE,
    .slots = context_slots,
};

#endif /* BETTERALL_CONTEXT_H */
