/* Sibling: the awaitable `self.user`, one wait of one task on a sibling.
 *
 * Like CPython's FutureIter it is its own iterator: am_send returns the
 * sibling's outcome at once (PYGEN_RETURN) when the sibling has finished,
 * so awaiting a finished sibling costs no loop round trip.  Otherwise it
 * first looks for a cycle along the wait-for edges, registers itself in the
 * sibling's waiter list, and yields itself: the engine recognises it and
 * parks the task on it.
 *
 * Code that is not the engine (asyncio.gather, wait_for, shield, a foreign
 * asyncio.Task) sees an asyncio Future instead: `_asyncio_future_blocking`,
 * add_done_callback, result, cancel...  Cancelling the wait never cancels
 * the sibling: it only withdraws this waiter.
 */
#ifndef BETTERALL_SIBLING_H
#define BETTERALL_SIBLING_H

#include "state.h"

static void
sibling_trace_wait_end(SiblingObject *s)
{
    NodeObject *w = s->waiter;
    GraphObject *g = w->graph;
    if (g == NULL || g->report == NULL || s->t_wait == 0.0) {
        return;
    }
    /* Most tasks wait once or never: the slot holds the one (start, end)
     * pair itself, and a list only from the second wait on. */
    PyObject *pair = PyTuple_New(2);
    PyObject *start = PyFloat_FromDouble(s->t_wait);
    PyObject *end = PyFloat_FromDouble(ba_now(g->mst));
    s->t_wait = 0.0;
    if (pair == NULL || start == NULL || end == NULL) {
        Py_XDECREF(pair);
        Py_XDECREF(start);
        Py_XDECREF(end);
        PyErr_Clear();
        return;
    }
    PyTuple_SET_ITEM(pair, 0, start);
    PyTuple_SET_ITEM(pair, 1, end);
    PyObject_GC_UnTrack(pair); /* two floats: no cycle can pass through it */
    if (w->waits == NULL) {
        w->waits = pair;
        return;
    }
    if (PyTuple_CheckExact(w->waits)) {
        PyObject *list = PyList_New(2);
        if (list == NULL) {
            Py_DECREF(pair);
            PyErr_Clear();
            return;
        }
        PyList_SET_ITEM(list, 0, w->waits); /* the slot's reference moves */
        PyList_SET_ITEM(list, 1, pair);
        w->waits = list;
        return;
    }
    if (PyList_Append(w->waits, pair) < 0) {
        PyErr_Clear();
    }
    Py_DECREF(pair);
}

/* Remove `item` (by identity) from `list`; no error if absent. */
static void
list_remove_identity(PyObject *list, PyObject *item)
{
    if (list == NULL) {
        return;
    }
    for (Py_ssize_t i = PyList_GET_SIZE(list) - 1; i >= 0; i--) {
        if (PyList_GET_ITEM(list, i) == item) {
            (void)PyList_SetSlice(list, i, i + 1, NULL);
            return;
        }
    }
}

/* Small reference sets (see refs_len in state.h). */
static int
refs_add(PyObject **slot, PyObject *item)
{
    if (*slot == NULL) {
        *slot = Py_NewRef(item);
        return 0;
    }
    if (!PyList_CheckExact(*slot)) {
        PyObject *list = PyList_New(2);
        if (list == NULL) {
            return -1;
        }
        PyList_SET_ITEM(list, 0, *slot); /* the slot's reference moves */
        PyList_SET_ITEM(list, 1, Py_NewRef(item));
        *slot = list;
        return 0;
    }
    return PyList_Append(*slot, item);
}

static void
refs_remove(PyObject **slot, PyObject *item)
{
    if (*slot == item) {
        Py_CLEAR(*slot);
    }
    else if (*slot != NULL && PyList_CheckExact(*slot)) {
        list_remove_identity(*slot, item);
    }
}


/* Withdraw a blocked wait from the target's waiters and the wait-for
 * edges.  Leaves `state` for the caller to set. */
static void
sibling_unregister(SiblingObject *s)
{
    if (s->state != SIB_BLOCKED) {
        return;
    }
    PyObject *exc = PyErr_Occurred() ? ba_fetch_exc() : NULL;
    Py_INCREF(s);
    refs_remove(&s->target->waiters, (PyObject *)s);
    refs_remove(&s->waiter->blocked_on, (PyObject *)s);
    sibling_trace_wait_end(s);
    Py_DECREF(s);
    if (exc != NULL) {
        ba_restore_exc(exc);
    }
}

/* (Re)start `s` as a new wait on `target`.  The references it held are
 * dropped last: dropping them can run code. */
static void
sibling_start(SiblingObject *s, PyObject *target)
{
    PyObject *old_target = (PyObject *)s->target;
    PyObject *old_callbacks = s->callbacks;
    PyObject *old_msg = s->cancel_msg;
    s->target = (NodeObject *)Py_NewRef(target);
    s->callbacks = NULL;
    s->cancel_msg = NULL;
    s->t_wait = 0.0;
    s->state = SIB_INIT;
    s->blocking = 0;
    s->parked = 0;
    Py_XDECREF(old_target);
    Py_XDECREF(old_callbacks);
    Py_XDECREF(old_msg);
}

/* The cycle that `waiter` waiting on `target` would close: a list of names
 * starting and ending with the waiter; NULL with no error when there is
 * none; NULL with an error set on failure. */
static PyObject *
find_cycle(NodeObject *waiter, NodeObject *target)
{
    GraphObject *g = waiter->graph;
    if (target == waiter) {
        PyObject *cycle = PyList_New(2);
        if (cycle != NULL) {
            PyList_SET_ITEM(cycle, 0, Py_NewRef(waiter->name));
            PyList_SET_ITEM(cycle, 1, Py_NewRef(waiter->name));
        }
        return cycle;
    }
    /* A cycle needs a path target -> ... -> waiter along the wait-for edges,
     * so none exists when the target waits on nobody, or when nobody waits
     * on the waiter.  These two checks settle nearly every wait in O(1),
     * long chains included; only the rest pay for the search. */
    if (refs_len(target->blocked_on) == 0 || refs_len(waiter->waiters) == 0) {
        return NULL;
    }
    /* Depth-first search along the wait-for edges, with an explicit stack so
     * that a long chain of waits cannot overflow the C stack. */
    typedef struct { NodeObject *node; Py_ssize_t next; } frame;
    Py_ssize_t cap = 16, depth = 0;
    frame *stack = PyMem_Malloc(cap * sizeof(frame));
    if (stack == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    int epoch = ++g->visit_epoch;
    stack[depth++] = (frame){target, 0};
    target->visit = epoch;
    PyObject *cycle = NULL;
    while (depth > 0) {
        frame *top = &stack[depth - 1];
        PyObject *edges = top->node->blocked_on;
        if (top->next >= refs_len(edges)) {
            depth--;
            continue;
        }
        NodeObject *next = ((SiblingObject *)refs_item(edges, top->next))->target;
        top->next++;
        if (next == waiter) {
            cycle = PyList_New(depth + 2);
            if (cycle == NULL) {
                break;
            }
            PyList_SET_ITEM(cycle, 0, Py_NewRef(waiter->name));
            for (Py_ssize_t i = 0; i < depth; i++) {
                PyList_SET_ITEM(cycle, i + 1, Py_NewRef(stack[i].node->name));
            }
            PyList_SET_ITEM(cycle, depth + 1, Py_NewRef(waiter->name));
            break;
        }
        if (next->visit == epoch) {
            continue;
        }
        next->visit = epoch;
        if (depth == cap) {
            frame *bigger = PyMem_Realloc(stack, 2 * cap * sizeof(frame));
            if (bigger == NULL) {
                PyErr_NoMemory();
                break;
            }
            stack = bigger;
            cap *= 2;
        }
        stack[depth++] = (frame){next, 0};
    }
    PyMem_Free(stack);
    return cycle;
}

/* Block on the target: cycle check, then register.  0 or -1. */
static int
sibling_block(SiblingObject *s)
{
    NodeObject *waiter = s->waiter, *target = s->target;
    mod_state *st = waiter->mst;
    if (waiter->graph == NULL) {
        context_gone(waiter);
        return -1;
    }
    PyObject *cycle = find_cycle(waiter, target);
    if (cycle != NULL) {
        PyObject *err = PyObject_CallOneArg(st->CycleError, cycle);
        Py_DECREF(cycle);
        if (err != NULL) {
            ba_raise(err);
            Py_DECREF(err);
        }
        return -1;
    }
    if (PyErr_Occurred()) {
        return -1;
    }
    if (refs_add(&target->waiters, (PyObject *)s) < 0) {
        return -1;
    }
    if (refs_add(&waiter->blocked_on, (PyObject *)s) < 0) {
        refs_remove(&target->waiters, (PyObject *)s);
        return -1;
    }
    s->state = SIB_BLOCKED;
    if (waiter->graph->report != NULL) {
        s->t_wait = ba_now(st);
    }
    return 0;
}

static int
sibling_is_done(SiblingObject *s)
{
    return s->state == SIB_DONE || s->state == SIB_CANCELLED ||
           s->target->state == NODE_DONE;
}

/* Seen as a Future, the wait is cancelled when it was withdrawn or when
 * the graph cancelled its target (awaiting it raises CancelledError). */
static int
sibling_is_cancelled(SiblingObject *s)
{
    return s->state == SIB_CANCELLED ||
           (s->target->state == NODE_DONE && s->target->status != STATUS_FULFILLED &&
            s->target->status != STATUS_REJECTED);
}

static PyObject *
sibling_target_cancelled_msg(SiblingObject *s)
{
    return PyUnicode_FromFormat("task %R was cancelled", s->target->name);
}

/* A new CancelledError for a cancelled wait (see sibling_is_cancelled). */
static PyObject *
sibling_cancelled_error(SiblingObject *s)
{
    mod_state *st = s->target->mst;
    if (s->state == SIB_CANCELLED) {
        return s->cancel_msg ? PyObject_CallOneArg(st->CancelledError, s->cancel_msg)
                             : PyObject_CallNoArgs(st->CancelledError);
    }
    PyObject *msg = sibling_target_cancelled_msg(s);
    if (msg == NULL) {
        return NULL;
    }
    PyObject *err = PyObject_CallOneArg(st->CancelledError, msg);
    Py_DECREF(msg);
    return err;
}

/* The target's outcome: a new reference to its value, or NULL with its
 * error raised. */
static PyObject *
sibling_outcome(SiblingObject *s)
{
    NodeObject *t = s->target;
    if (s->state != SIB_CANCELLED) {
        if (t->status == STATUS_FULFILLED) {
            return Py_NewRef(t->result ? t->result : Py_None);
        }
        if (t->status == STATUS_REJECTED) {
            ba_raise(t->error);
            return NULL;
        }
    }
    PyObject *err = sibling_cancelled_error(s);
    if (err != NULL) {
        ba_raise(err);
        Py_DECREF(err);
    }
    return NULL;
}

/* Beyond this many distinct siblings, a task's deps go into a dict (an
 * ordered set) instead of a list scanned on every await. */
#define DEPS_LIST_MAX 8

static void
sibling_note_dep(SiblingObject *s)
{
    NodeObject *w = s->waiter;
    PyObject *name = s->target->name;
    /* First-await order.  The slot holds the one sibling's name itself
     * (most tasks await one sibling, or the same one again), then a short
     * list, then a dict used as an ordered set: O(1) per await for a task
     * that awaits a thousand siblings.  Names are compared by identity:
     * each node's own name object. */
    if (w->deps == NULL) {
        w->deps = Py_NewRef(name);
        return;
    }
    if (w->deps == name) {
        return;
    }
    if (!PyList_CheckExact(w->deps) && !PyDict_CheckExact(w->deps)) {
        /* The one name so far (a str, or a str subclass of a mapping that
         * is not a dict). */
        PyObject *list = PyList_New(2);
        if (list == NULL) {
            PyErr_Clear();
            return;
        }
        PyList_SET_ITEM(list, 0, w->deps); /* the slot's reference moves */
        PyList_SET_ITEM(list, 1, Py_NewRef(name));
        w->deps = list;
        return;
    }
    if (PyList_CheckExact(w->deps)) {
        Py_ssize_t n = PyList_GET_SIZE(w->deps);
        for (Py_ssize_t i = 0; i < n; i++) {
            if (PyList_GET_ITEM(w->deps, i) == name) {
                return;
            }
        }
        if (n < DEPS_LIST_MAX) {
            if (PyList_Append(w->deps, name) < 0) {
                PyErr_Clear();
            }
            return;
        }
        PyObject *set = PyDict_New();
        for (Py_ssize_t i = 0; set != NULL && i < n; i++) {
            if (PyDict_SetItem(set, PyList_GET_ITEM(w->deps, i), Py_None) < 0) {
                Py_CLEAR(set);
            }
        }
        if (set == NULL) {
            PyErr_Clear();
            return;
        }
        Py_SETREF(w->deps, set);
    }
    if (PyDict_SetDefault(w->deps, name, Py_None) == NULL) {
        PyErr_Clear();
    }
}

/* gather() and friends wait through the Future interface: done(), then
 * callbacks or, for a finished sibling, result()/exception().  Any use of
 * it counts as a wait (only `self.x` alone does not), so that the traced
 * deps keep the order in which the siblings were handed to asyncio. */
static void
sibling_note_foreign_wait(SiblingObject *s)
{
    if (s->state == SIB_INIT && s->waiter->graph != NULL && s->waiter->graph->report != NULL) {
        sibling_note_dep(s);
    }
}

/* A wait counts for the task that awaits, which need not be the one that
 * took `self.x`: a task may hand the awaitable to a sibling.  The awaiting
 * task is the node the graph is stepping when the wait starts (what
 * asyncio.current_task() returns there).  Awaited outside the graph's
 * steps (in a task of the user's own), the wait stays with its maker. */
static inline void
sibling_take_awaiter(SiblingObject *s)
{
    GraphObject *g = s->waiter->graph;
    if (g != NULL && g->current != NULL && g->current != s->waiter) {
        Py_SETREF(s->waiter, (NodeObject *)Py_NewRef(g->current));
    }
}

static PySendResult
sibling_am_send(PyObject *self, PyObject *arg, PyObject **result)
{
    SiblingObject *s = (SiblingObject *)self;
    (void)arg;
    switch (s->state) {
    case SIB_INIT:
        sibling_take_awaiter(s);
        if (s->waiter->graph != NULL && s->waiter->graph->report != NULL) {
            sibling_note_dep(s);
        }
        if (s->target->state == NODE_DONE) {
            s->state = SIB_DONE;
            break;
        }
        if (sibling_block(s) < 0) {
            *result = NULL;
            return PYGEN_ERROR;
        }
        /* blocked now */
        /* fall through */
    case SIB_BLOCKED:
        if (s->target->state != NODE_DONE) {
            s->blocking = 1;
            *result = Py_NewRef(self);
            return PYGEN_NEXT;
        }
        sibling_unregister(s);
        s->state = SIB_DONE;
        break;
    default:
        break;
    }
    *result = sibling_outcome(s);
    return *result ? PYGEN_RETURN : PYGEN_ERROR;
}

/* Raise StopIteration(value) so that even a tuple or an exception value
 * comes back as itself. */
static void
set_stop_iteration(PyObject *value)
{
    PyObject *e = PyObject_CallOneArg(PyExc_StopIteration, value);
    if (e != NULL) {
        PyErr_SetObject(PyExc_StopIteration, e);
        Py_DECREF(e);
    }
}

/* The iterator protocol on top of an am_send result: tp_iternext returns
 * NULL with no exception for a None return (a cheap StopIteration), send()
 * always raises StopIteration(value). */
static PyObject *
send_result_to_iter(PySendResult r, PyObject *result, int is_iternext)
{
    if (r == PYGEN_RETURN) {
        if (!is_iternext || result != Py_None) {
            set_stop_iteration(result);
        }
        Py_DECREF(result);
        return NULL;
    }
    return result; /* yielded, or NULL with the error set */
}

/* Raise StopIteration(value), reusing the module's instance when nobody
 * else holds it.
 *
 * From 3.12 on, the interpreter's `await` drives a non-generator awaitable
 * through tp_iternext, not am_send, so every await of a finished sibling
 * returns its value in a StopIteration: creating one costs more than the
 * rest of the await (docs/performance-log.md).  The interpreter takes the value out and
 * drops the exception at once, so the instance is free again right after.
 * Reuse is safe only when our reference is the only one (nobody caught
 * it and kept it) and it carries nothing from an earlier trip (traceback,
 * context, cause, notes, attributes); otherwise a new one is made.
 * graph_result() drops the instance so that no value outlives its call. */
static void
raise_stop_iteration_reused(mod_state *st, PyObject *value)
{
    PyObject *e = st->stop_iter;
    PyBaseExceptionObject *b = (PyBaseExceptionObject *)e;
    if (e == NULL || Py_REFCNT(e) != 1 || b->dict != NULL || b->notes != NULL ||
        b->traceback != NULL || b->context != NULL || b->cause != NULL) {
        e = PyObject_CallOneArg(PyExc_StopIteration, value);
        if (e == NULL) {
            return;
        }
        Py_XSETREF(st->stop_iter, e);
        PyErr_Restore(Py_NewRef(PyExc_StopIteration), Py_NewRef(e), NULL);
        return;
    }
    PyStopIterationObject *si = (PyStopIterationObject *)e;
    PyObject *old_value = si->value;
    PyObject *old_item = NULL;
    PyObject *args = si->args;
    if (args != NULL && PyTuple_CheckExact(args) && PyTuple_GET_SIZE(args) == 1 &&
        Py_REFCNT(args) == 1) {
        /* Nobody else sees the args tuple either: refill it in place, as
         * zip() and dict iterators reuse their result tuple. */
        old_item = PyTuple_GET_ITEM(args, 0);
        PyTuple_SET_ITEM(args, 0, Py_NewRef(value));
        if (!PyObject_GC_IsTracked(args)) {
            PyObject_GC_Track(args);
        }
        args = NULL;
    }
    else {
        PyObject *fresh = PyTuple_Pack(1, value);
        if (fresh == NULL) {
            return;
        }
        si->args = fresh; /* the old tuple is dropped below */
    }
    si->value = Py_NewRef(value);
    PyErr_Restore(Py_NewRef(PyExc_StopIteration), Py_NewRef(e), NULL);
    /* Last: dropping the old objects can run code that awaits again (it
     * then finds the instance in use and makes its own). */
    Py_XDECREF(old_value);
    Py_XDECREF(old_item);
    Py_XDECREF(args);
}

static PyObject *
sibling_iternext(PyObject *self)
{
    PyObject *result;
    PySendResult r = sibling_am_send(self, Py_None, &result);
    if (r == PYGEN_RETURN && result != Py_None) {
        raise_stop_iteration_reused(((SiblingObject *)self)->target->mst, result);
        Py_DECREF(result);
        return NULL;
    }
    return send_result_to_iter(r, result, 1);
}

static PyObject *
sibling_send(PyObject *self, PyObject *arg)
{
    PyObject *result;
    PySendResult r = sibling_am_send(self, arg, &result);
    return send_result_to_iter(r, result, 0);
}

/* `send` is served here rather than from the type's dict.  A type whose
 * dict has __await__, send, throw and close is a coroutine to
 * collections.abc.Coroutine, so to asyncio.iscoroutine(), and
 * asyncio.wait() refuses coroutines.  To asyncio a sibling is a future (as
 * the pure engine's is): asyncio.wait([self.a, self.b]) takes it.  The
 * interpreter's own await never looks `send` up (am_send, tp_iternext). */
static PyMethodDef sibling_send_def = {"send", (PyCFunction)sibling_send, METH_O, NULL};

static PyObject *
sibling_getattro(PyObject *self, PyObject *name)
{
    PyObject *attr = PyObject_GenericGetAttr(self, name);
    if (attr == NULL && PyUnicode_Check(name) &&
        PyUnicode_CompareWithASCIIString(name, "send") == 0 &&
        PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        attr = PyCFunction_New(&sibling_send_def, self);
    }
    return attr;
}

static PyObject *
sibling_throw(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    SiblingObject *s = (SiblingObject *)self;
    if (nargs < 1 || nargs > 3) {
        PyErr_SetString(PyExc_TypeError, "throw() takes 1 to 3 arguments");
        return NULL;
    }
    if (s->state == SIB_BLOCKED) {
        sibling_unregister(s);
        s->state = SIB_CANCELLED;
    }
    PyObject *typ = args[0];
    if (PyExceptionInstance_Check(typ)) {
        ba_raise(typ);
    }
    else if (PyExceptionClass_Check(typ)) {
        PyErr_SetObject(typ, nargs > 1 ? args[1] : Py_None);
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
    }
    return NULL;
}

static PyObject *
sibling_close(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    SiblingObject *s = (SiblingObject *)self;
    if (s->state == SIB_BLOCKED && !s->parked) {
        sibling_unregister(s);
        s->state = SIB_CANCELLED;
    }
    Py_RETURN_NONE;
}

static PyObject *
sibling_await(PyObject *self)
{
    return Py_NewRef(self);
}

/* -- completion ----------------------------------------------------------- */

static int
sibling_fire_callbacks(SiblingObject *s)
{
    if (s->callbacks == NULL) {
        return 0;
    }
    PyObject *cbs = s->callbacks;
    s->callbacks = NULL;
    int rc = 0;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(cbs); i++) {
        PyObject *pair = PyList_GET_ITEM(cbs, i);
        if (call_soon(s->waiter->graph, PyTuple_GET_ITEM(pair, 0), (PyObject *)s,
                      PyTuple_GET_ITEM(pair, 1)) < 0) {
            rc = -1;
        }
    }
    Py_DECREF(cbs);
    return rc;
}

/* Wake a waiter parked on `s`, which has just become done or cancelled. */
static void
sibling_wake_parked(SiblingObject *s)
{
    if (!s->parked) {
        return;
    }
    NodeObject *w = s->waiter;
    s->parked = 0;
    if (w->parked == (PyObject *)s) {
        Py_CLEAR(w->parked);
    }
    graph_enqueue(w->graph, w);
}

/* `target` finished: every wait on it is done. */
static int
sibling_complete_all(NodeObject *target)
{
    PyObject *waiters = target->waiters;
    if (waiters == NULL) {
        return 0;
    }
    target->waiters = NULL; /* its reference is ours now */
    int rc = 0;
    Py_ssize_t n = refs_len(waiters);
    for (Py_ssize_t i = 0; i < n; i++) {
        SiblingObject *s = (SiblingObject *)refs_item(waiters, i);
        if (s->state != SIB_BLOCKED) {
            continue;
        }
        refs_remove(&s->waiter->blocked_on, (PyObject *)s);
        sibling_trace_wait_end(s);
        s->state = SIB_DONE;
        sibling_wake_parked(s);
        if (sibling_fire_callbacks(s) < 0) {
            rc = -1;
        }
    }
    Py_DECREF(waiters);
    return rc;
}

/* -- the Future interface, for foreign awaiters ----------------------------- */

static PyObject *
sibling_done(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    sibling_note_foreign_wait((SiblingObject *)self);
    return PyBool_FromLong(sibling_is_done((SiblingObject *)self));
}

static PyObject *
sibling_cancelled(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    sibling_note_foreign_wait((SiblingObject *)self);
    return PyBool_FromLong(sibling_is_cancelled((SiblingObject *)self));
}

static PyObject *
sibling_result(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    SiblingObject *s = (SiblingObject *)self;
    if (!sibling_is_done(s)) {
        PyErr_SetString(s->waiter->mst->InvalidStateError, "Result is not set.");
        return NULL;
    }
    sibling_note_foreign_wait(s);
    return sibling_outcome(s);
}

static PyObject *
sibling_exception(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    SiblingObject *s = (SiblingObject *)self;
    mod_state *st = s->waiter->mst;
    if (!sibling_is_done(s)) {
        PyErr_SetString(st->InvalidStateError, "Exception is not set.");
        return NULL;
    }
    sibling_note_foreign_wait(s);
    if (!sibling_is_cancelled(s)) {
        if (s->target->status == STATUS_FULFILLED) {
            Py_RETURN_NONE;
        }
        return Py_NewRef(s->target->error);
    }
    return sibling_outcome(s);
}

static PyObject *
sibling_add_done_callback(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    SiblingObject *s = (SiblingObject *)self;
    PyObject *context;
    if (parse_optional(args, nargs, kwnames, 1, "context", 1, &context,
                       "add_done_callback() takes a callback and an optional context=") < 0) {
        return NULL;
    }
    context = (context != NULL && context != Py_None) ? Py_NewRef(context)
                                                      : PyContext_CopyCurrent();
    if (context == NULL) {
        return NULL;
    }
    sibling_note_foreign_wait(s);
    if (sibling_is_done(s)) {
        GraphObject *g = s->waiter->graph;
        int r = call_soon_in(g ? g->loop : NULL, s->waiter->mst, args[0], self, context);
        Py_DECREF(context);
        if (r < 0) {
            return NULL;
        }
        Py_RETURN_NONE;
    }
    if (s->state == SIB_INIT) {
        if (sibling_block(s) < 0) {
            Py_DECREF(context);
            return NULL;
        }
    }
    PyObject *pair = PyTuple_Pack(2, args[0], context);
    Py_DECREF(context);
    if (pair == NULL) {
        return NULL;
    }
    if (s->callbacks == NULL && (s->callbacks = PyList_New(0)) == NULL) {
        Py_DECREF(pair);
        return NULL;
    }
    int r = PyList_Append(s->callbacks, pair);
    Py_DECREF(pair);
    if (r < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
sibling_remove_done_callback(PyObject *self, PyObject *fn)
{
    SiblingObject *s = (SiblingObject *)self;
    Py_ssize_t n = remove_callbacks(s->callbacks, fn);
    if (n < 0) {
        return NULL;
    }
    if (n > 0 && PyList_GET_SIZE(s->callbacks) == 0 && s->state == SIB_BLOCKED &&
        !s->parked) {
        /* Nobody waits any more: withdraw the wait-for edge. */
        sibling_unregister(s);
        s->state = SIB_INIT;
    }
    return PyLong_FromSsize_t(n);
}


static PyObject *
sibling_cancel(PyObject *self, PyObject *const *args, Py_ssize_t nargs,
               PyObject *kwnames)
{
    SiblingObject *s = (SiblingObject *)self;
    PyObject *msg;
    if (parse_optional(args, nargs, kwnames, 0, "msg", 0, &msg,
                       "cancel() takes one optional argument, msg") < 0) {
        return NULL;
    }
    if (sibling_is_done(s) || s->waiter->graph == NULL) {
        Py_RETURN_FALSE;
    }
    if (msg == Py_None) {
        msg = NULL;
    }
    sibling_unregister(s);
    s->state = SIB_CANCELLED;
    Py_XSETREF(s->cancel_msg, Py_XNewRef(msg));
    int was_parked = s->parked;
    sibling_wake_parked(s);
    if (sibling_fire_callbacks(s) < 0) {
        return NULL;
    }
    if (was_parked && graph_schedule_drain(s->waiter->graph) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

/* asyncio.Future's private helper, which gather()'s done callback calls on
 * a cancelled child: without it, gather over cancelled sibling waits never
 * finished. */
static PyObject *
sibling_make_cancelled_error(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    return sibling_cancelled_error((SiblingObject *)self);
}

/* Future._cancel_message: 3.11's gather(return_exceptions=True) reads it. */
static PyObject *
sibling_get_cancel_message(PyObject *self, void *Py_UNUSED(closure))
{
    SiblingObject *s = (SiblingObject *)self;
    if (s->state == SIB_CANCELLED || !sibling_is_cancelled(s)) {
        return Py_NewRef(s->cancel_msg ? s->cancel_msg : Py_None);
    }
    return sibling_target_cancelled_msg(s);
}

static PyObject *
sibling_get_loop(PyObject *self, PyObject *Py_UNUSED(ignored))
{
    GraphObject *g = ((SiblingObject *)self)->waiter->graph;
    return Py_NewRef(g && g->loop ? g->loop : Py_None);
}

static PyObject *
sibling_get_blocking(PyObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(((SiblingObject *)self)->blocking);
}

static int
sibling_set_blocking(PyObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete _asyncio_future_blocking");
        return -1;
    }
    int v = PyObject_IsTrue(value);
    if (v < 0) {
        return -1;
    }
    ((SiblingObject *)self)->blocking = v;
    return 0;
}

static PyObject *
sibling_repr(PyObject *self)
{
    SiblingObject *s = (SiblingObject *)self;
    return PyUnicode_FromFormat("<betterall sibling %R of %R>", s->target->name,
                                s->waiter->name);
}

static int
sibling_traverse(SiblingObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->waiter);
    Py_VISIT(self->target);
    Py_VISIT(self->callbacks);
    Py_VISIT(self->cancel_msg);
    return 0;
}

static int
sibling_clear(SiblingObject *self)
{
    Py_CLEAR(self->waiter);
    Py_CLEAR(self->target);
    Py_CLEAR(self->callbacks);
    Py_CLEAR(self->cancel_msg);
    return 0;
}

static void
sibling_dealloc(SiblingObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL) {
        PyObject_ClearWeakRefs((PyObject *)self);
    }
    (void)sibling_clear(self);
    ba_live_dealloc(tp, LIVE_SIBLING);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMethodDef sibling_methods[] = {
    {"throw", (PyCFunction)(void (*)(void))sibling_throw, METH_FASTCALL, NULL},
    {"close", (PyCFunction)sibling_close, METH_NOARGS, NULL},
    {"done", (PyCFunction)sibling_done, METH_NOARGS, "True once the sibling finished."},
    {"cancelled", (PyCFunction)sibling_cancelled, METH_NOARGS,
     "True if this wait was cancelled."},
    {"result", (PyCFunction)sibling_result, METH_NOARGS, "The sibling's result."},
    {"exception", (PyCFunction)sibling_exception, METH_NOARGS,
     "The sibling's exception, or None."},
    {"add_done_callback", (PyCFunction)(void (*)(void))sibling_add_done_callback,
     METH_FASTCALL | METH_KEYWORDS, NULL},
    {"remove_done_callback", (PyCFunction)sibling_remove_done_callback, METH_O, NULL},
    {"cancel", (PyCFunction)(void (*)(void))sibling_cancel, METH_FASTCALL | METH_KEYWORDS,
     "Withdraw this wait (the sibling itself keeps running)."},
    {"get_loop", (PyCFunction)sibling_get_loop, METH_NOARGS, NULL},
    {"_make_cancelled_error", (PyCFunction)sibling_make_cancelled_error, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef sibling_getset[] = {
    {"_asyncio_future_blocking", sibling_get_blocking, sibling_set_blocking, NULL, NULL},
    {"_cancel_message", sibling_get_cancel_message, NULL, NULL, NULL},
    {NULL},
};

static PyMemberDef sibling_members[] = {
    {"__weaklistoffset__", Py_T_PYSSIZET, offsetof(SiblingObject, weakreflist), Py_READONLY},
    {NULL},
};

static PyType_Slot sibling_slots[] = {
    {Py_tp_doc, "The awaitable self.<name>: the result of a sibling task."},
    {Py_tp_dealloc, sibling_dealloc},
    {Py_tp_traverse, sibling_traverse},
    {Py_tp_clear, sibling_clear},
    {Py_tp_methods, sibling_methods},
    {Py_tp_getset, sibling_getset},
    {Py_tp_members, sibling_members},
    {Py_tp_repr, sibling_repr},
    {Py_tp_getattro, sibling_getattro},
    {Py_tp_iter, sibling_await},
    {Py_tp_iternext, sibling_iternext},
    {Py_am_await, sibling_await},
    {Py_am_send, sibling_am_send},
    {0, NULL},
};

static PyType_Spec sibling_spec = {
    .name = "betterall._cengine.Sibling",
    .basicsize = sizeof(SiblingObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE |
             Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = sibling_slots,
};

#endif /* BETTERALL_SIBLING_H */
